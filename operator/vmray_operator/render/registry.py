"""Registry credentials for pulling the Ray image: a docker config file on the VM (mode 0600), never a
command line, so they show in no process list and no log."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

DOCKER_HUB = "https://index.docker.io/v1/"
DOCKER_CONFIG_PATH = "/root/.docker/config.json"  # read by `docker pull` run as root from cloud-init


@dataclass(frozen=True)
class RegistryCredentials:
    username: str
    password: str
    registry: str | None = None  # None: the registry of the image reference

    def __repr__(self) -> str:  # never print the password
        return f"RegistryCredentials(username={self.username!r}, registry={self.registry!r})"


def registry_of(image: str) -> str:
    """The registry host an image reference pulls from (Docker Hub when the first part is no host)."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return DOCKER_HUB


def docker_config(credentials: RegistryCredentials, image: str) -> str:
    registry = credentials.registry or registry_of(image)
    auth = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
    return json.dumps({"auths": {registry: {"auth": auth}}}, indent=2, sort_keys=True) + "\n"
