"""The micro topology: the demo split into gateway, catalog and orders services over HTTP.

    gateway  (public API: validation, fan-out, aggregation; balances, retries, breaks circuits)
      ├── catalog-0 … catalog-N-1   the sharded, cached item store (demo_app's code), replicas
      └── orders-0 …                 checkout: reserves stock at the catalog, writes orders to
                                     its own shards

``narrows up --topology micro`` (or ``--replicas catalog=3``) runs them; ``narrows service
ROLE`` runs one. The client side (balancer, breaker, retries, health checks) lives in
``balancer.py``, ``breaker.py``, ``retry.py`` and ``upstream.py``; the apps in
``gateway_app.py``, ``catalog_app.py`` and ``orders_app.py``.
"""
