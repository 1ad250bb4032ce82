"""A small async client over the `kubernetes` package: one code path for core and custom resources,
typed errors, idempotent create and delete, and strict writes."""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import kubernetes.client
import kubernetes.config

from vmray_operator import metrics
from vmray_operator.api.contract import Body
from vmray_operator.kube.resources import Resource

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
# Every create, patch and update asks for strict field validation: an unknown, misspelt or misplaced field is an
# error naming it, where an API server otherwise drops it silently (and the object then lacks what was meant).
STRICT_WRITES = {"POST", "PATCH", "PUT"}


class ApiError(Exception):
    """A non-2xx answer of the API server; `message` is the server's own explanation."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    """409: the object exists already (reason AlreadyExists) or was changed meanwhile."""

    @property
    def already_exists(self) -> bool:
        return self.reason == "AlreadyExists"


class Invalid(ApiError):
    pass


class Unauthorized(ApiError):
    pass


class Forbidden(ApiError):
    pass


_ERRORS: Mapping[int, type[ApiError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: Invalid,
}


def _error(status: int, data: bytes) -> ApiError:
    reason, message = "", data.decode(errors="replace")
    try:
        parsed = json.loads(data)
        reason, message = str(parsed.get("reason", "")), str(parsed.get("message", message))
    except (ValueError, AttributeError):
        pass
    return _ERRORS.get(status, ApiError)(status, reason, message)


def load_configuration(kubeconfig: str | None = None) -> kubernetes.client.Configuration:
    """Configuration from a kubeconfig path, else in-cluster, else the default kubeconfig."""
    configuration = kubernetes.client.Configuration()
    if kubeconfig:
        kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(client_configuration=configuration)
    return configuration


@dataclass(frozen=True)
class _Call:
    """One request, as the thread pool carries it out."""

    method: str
    path: str
    query: Mapping[str, str]
    body: Any
    content_type: str


class Kube:
    """Async access to the API server. Calls run on a private thread pool sized for many clusters."""

    def __init__(self, configuration: kubernetes.client.Configuration, concurrency: int = 32) -> None:
        configuration.connection_pool_maxsize = concurrency
        self.configuration = configuration
        self._api = kubernetes.client.ApiClient(configuration)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="kube")
        self.requests = 0  # counted for benchmarks: every request sent to the API server
        self.writes = 0  # create, patch, put and delete requests
        self.writes_by_namespace: collections.Counter[str] = collections.Counter()

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None = None) -> Kube:
        return cls(load_configuration(kubeconfig))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._api.close()

    def _call(self, call: _Call) -> Any:
        headers = {"Accept": "application/json", "Content-Type": call.content_type}
        _, url, headers, body, _ = self._api.param_serialize(
            method=call.method,
            resource_path=call.path,
            query_params=list(call.query.items()),
            header_params=headers,
            body=call.body,
            auth_settings=["BearerToken"],
        )
        with metrics.api_request(self.configuration.host, call.method) as sent:
            response = self._api.call_api(call.method, url, header_params=headers, body=body, _request_timeout=30)
            data: bytes = response.read()
            sent.code = response.status
        if not 200 <= response.status <= 299:
            raise _error(response.status, data)
        return json.loads(data) if data else None

    async def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        self.requests += 1
        query = dict(query or {})
        if method in STRICT_WRITES:
            query["fieldValidation"] = "Strict"
        if method != "GET":
            self.writes += 1
            if "/namespaces/" in path:
                self.writes_by_namespace[path.split("/namespaces/", 1)[1].split("/", 1)[0]] += 1
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._call, _Call(method, path, query, body, content_type))

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> Body | None:
        """The object, or None when it does not exist."""
        try:
            result: Body = await self.request("GET", resource.path(namespace, name))
        except NotFound:
            return None
        return result

    async def list(
        self, resource: Resource, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Body]:
        query = {"labelSelector": label_selector} if label_selector else None
        result = await self.request("GET", resource.path(namespace), query)
        items: list[Body] = result.get("items", [])
        for item in items:  # list items carry no kind; give them one so they look like single gets
            item.setdefault("apiVersion", result.get("apiVersion"))
            item.setdefault("kind", str(result.get("kind", "")).removesuffix("List"))
        return items

    async def create(self, resource: Resource, body: Body, namespace: str | None = None) -> Body:
        result: Body = await self.request("POST", resource.path(namespace), body=body)
        return result

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        subresource: str | None = None,
        content_type: str = MERGE_PATCH,
    ) -> Body:
        result: Body = await self.request(
            "PATCH", resource.path(namespace, name, subresource), body=patch, content_type=content_type
        )
        return result

    async def apply(self, resource: Resource, body: Body, field_manager: str, namespace: str | None = None) -> Body:
        """Server-side apply with force: creates or updates the fields this manager owns."""
        name = body["metadata"]["name"]
        result: Body = await self.request(
            "PATCH",
            resource.path(namespace, name),
            query={"fieldManager": field_manager, "force": "true"},
            body=body,
            content_type=APPLY_PATCH,
        )
        return result

    async def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        uid: str | None = None,
        propagation: str = "Background",
    ) -> bool:
        """Deletes the object; False when it was gone already. With uid, only that very object."""
        options: Body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        if uid:
            options["preconditions"] = {"uid": uid}
        try:
            await self.request("DELETE", resource.path(namespace, name), body=options)
        except NotFound:
            return False
        except Conflict:  # the uid precondition failed: a newer object of that name is not ours to delete
            return False
        return True
