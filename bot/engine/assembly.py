"""Building the engine's parts and wiring them to each other and to the engine's callbacks (once, at start).

:class:`bot.engine.engine.JobEngine` is the facade the cogs use; this module builds what it is made of:
the painting, the effects, the step table, the driver, the group delivery, the reconciler, the
dispatcher and admission, each given what it needs through its constructor: the groups of
:mod:`bot.engine.parts`, and the callbacks of the parts built after it.
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from bot.engine.admission import Admission, AdmissionParts
from bot.engine.config import EngineConfig
from bot.engine.dispatch import Dispatcher
from bot.engine.drive import Driver
from bot.engine.effects import EffectParts, Effects
from bot.engine.group_delivery import GroupDelivery
from bot.engine.painting import Painting
from bot.engine.parts import EngineCallbacks, EngineHooks, EngineParts
from bot.engine.reconcile import Reconciler
from bot.engine.steps import StepParts, Steps

__all__ = ["EngineCallbacks", "EngineHooks", "EngineParts", "Machinery", "assemble"]


@dataclass(frozen=True)
class Machinery:
    """The engine's parts, wired."""

    painting: Painting
    effects: Effects
    steps: Steps
    driver: Driver
    delivery: GroupDelivery
    reconciler: Reconciler
    dispatcher: Dispatcher
    admission: Admission


def assemble(parts: EngineParts, config: EngineConfig, hooks: EngineHooks, engine: EngineCallbacks) -> Machinery:
    """Build every part of the engine from its services, its settings and its hooks.

    The group delivery needs the effects, and the effects and the steps call it back (a group's image
    ended or is ready; a group being posted keeps its progress line still): they are given callables
    that reach it once it is built, below, before anything can call them.
    """

    def group_done(group_id: int) -> Coroutine[Any, Any, None]:
        return delivery.member_done(group_id)

    painting = Painting(
        parts.store,
        parts.groups,
        config,
        lambda: engine.latency,
        parts.clock,
        holder=parts.identity.id,
        group_posting=lambda group_id: delivery.posting(group_id),
    )
    effects = Effects(EffectParts(parts, config, hooks, painting, engine, group_done=group_done))
    steps = Steps(StepParts(parts, config, hooks.presenter, painting, engine, group_done=group_done))
    driver = Driver(steps, effects)
    delivery = GroupDelivery(
        store=parts.store,
        groups=parts.groups,
        cache=parts.provider.cache,
        bfl=parts.provider.bfl,
        identity=parts.identity,
        config=config,
        effects=effects,
    )
    reconciler = Reconciler(
        store=parts.store,
        driver=driver,
        effects=effects,
        delivery=delivery,
        clock=parts.clock,
        config=config,
        identity=parts.identity,
    )
    dispatcher = Dispatcher(
        parts.store, driver, config, parts.identity, claimed=engine.claimed, shared=lambda: reconciler.shared
    )
    admission = Admission(AdmissionParts(parts, config, hooks, engine, spawn=effects.spawn))
    return Machinery(painting, effects, steps, driver, delivery, reconciler, dispatcher, admission)
