"""A faithful KIE.AI simulator for tests, benchmarks and local runs (``python -m bot.kie_sim``)."""

from __future__ import annotations

from bot.kie_sim.server import KieSimulator, SimCall, SimCallback, SimConfig, SimTask

__all__ = ["KieSimulator", "SimCall", "SimCallback", "SimConfig", "SimTask"]
