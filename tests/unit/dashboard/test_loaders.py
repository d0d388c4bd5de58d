"""What the analysis loader asks a source for: the slow traces of the routes where requests
enter, not of every inner service's routes too."""

from __future__ import annotations

from dashboard.loaders import entry_services
from tests.support.synthetic_micro import CATALOG, GATEWAY, MicroScenario, generate
from tests.unit.analysis.helpers import server, span, trace


def test_requests_enter_at_the_gateway_in_the_micro_topology() -> None:
    window = generate(MicroScenario(seed=3, duration_s=2.0, rate_rps=60.0))
    assert entry_services(window.traces) == {GATEWAY}


def test_a_few_traces_cut_at_the_windows_edge_do_not_make_an_inner_service_an_entry() -> None:
    entry = server("GET /items/{id}", 0, 10, service=GATEWAY)
    whole = [trace(entry, trace_id=f"g{i}") for i in range(40)]
    cut = trace(server("GET /items/{id}", 1, 8, service=CATALOG), trace_id="c1")
    assert entry_services([*whole, cut]) == {GATEWAY}
    # Half the requests entering at the catalog directly: both are entries.
    direct = [trace(server("GET /items/{id}", 1, 8, service=CATALOG), trace_id=f"c{i}")
              for i in range(40)]  # fmt: skip
    assert entry_services([*whole, *direct]) == {GATEWAY, CATALOG}


def test_without_a_sample_every_service_is_asked() -> None:
    assert entry_services([]) is None
    only_clients = trace(span("GET", 0, 5, service="narrows-load"))
    assert entry_services([only_clients]) == {"narrows-load"}
