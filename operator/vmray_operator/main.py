"""Starts the operator: discovers the VM Operator API version, then runs kopf with our handlers."""

from __future__ import annotations

import asyncio
import logging

import kopf

from vmray_operator.config import Settings
from vmray_operator.controller.runtime import Controller
from vmray_operator.handlers import build_registry
from vmray_operator.kube.client import Kube
from vmray_operator.kube.discovery import vmop_version

log = logging.getLogger("vmray.operator")


async def run_operator(
    kube: Kube,
    settings: Settings,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
    liveness_endpoint: str | None = None,
) -> Controller:
    version = await vmop_version(kube, settings.vmop_api_version)
    log.info("using VM Operator API %s", version)
    controller = Controller(kube, settings, version)
    await kopf.operator(
        registry=build_registry(controller),
        standalone=True,
        clusterwide=True,
        stop_flag=stop,
        ready_flag=ready,
        liveness_endpoint=liveness_endpoint,
    )
    return controller
