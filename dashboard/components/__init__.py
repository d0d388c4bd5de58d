"""Reusable renderers (figures and tables) shared by pages."""
