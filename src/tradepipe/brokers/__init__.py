"""Broker adapters: one small async protocol, one file per broker."""
