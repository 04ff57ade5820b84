"""Affiliate postback back office."""

__version__ = "0.1.0"
