"""Keeps a cluster's Ray TLS material: its CA (made once, never leaves the operator's Secret) and a
certificate for every node address, issued into the certificates Secret the nodes read at boot."""

from __future__ import annotations

import datetime
import logging

from vmray_operator import certificates
from vmray_operator.controller.errors import NameTaken
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Body, Conflict, Kube
from vmray_operator.reconcile.observed import Observed, controlled_by, secret_value
from vmray_operator.reconcile.tls import certificate_changes, wanted_certificates
from vmray_operator.render import tls
from vmray_operator.render.context import ClusterContext

log = logging.getLogger("vmray.tls")
CA_VALIDITY = datetime.timedelta(days=3650)
# Ray reads a node's certificate when it starts; a cluster that outlives this is rolled to new VMs.
NODE_VALIDITY = datetime.timedelta(days=825)


class Certifier:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        # per certificates Secret: the resourceVersion of our last patch's base, and what the patch made;
        # until the watch brings the Secret back changed, what the patch made is what it holds
        self._patched: dict[tuple[str, str], tuple[str, Body]] = {}

    def forget(self, namespace: str, cluster: str) -> None:
        self._patched.pop((namespace, tls.certificates_secret_name(cluster)), None)

    async def ensure(self, ctx: ClusterContext, observed: Observed, head_name: str) -> None:
        ca = await self._ca(ctx, observed)
        name = tls.certificates_secret_name(ctx.name)
        current = observed.secrets.get(name)
        if current is None:
            current = await self._create(ctx, tls.certificates_secret(ctx, ca.cert_pem))
        patched = self._patched.get((ctx.namespace, name))
        if patched is not None and patched[0] == current.get("metadata", {}).get("resourceVersion"):
            current = patched[1]
        changes = certificate_changes(wanted_certificates(observed, head_name), current)
        if not changes:
            return
        string_data: dict[str, str] = {}
        for address, ips in sorted(changes.issue.items()):
            pair = certificates.issue(
                ca,
                certificates.name(f"{ctx.name} ray node {address}"),
                [certificates.SERVER_AUTH, certificates.CLIENT_AUTH],
                NODE_VALIDITY,
                ips=ips,
                dns_names=tls.LOCAL_NAMES,
            )
            string_data[tls.cert_key(address)] = pair.cert_pem
            string_data[tls.key_key(address)] = pair.key_pem
            string_data[tls.sans_key(address)] = ",".join(ips)
        removed = {key: None for a in changes.drop for key in (tls.cert_key(a), tls.key_key(a), tls.sans_key(a))}
        patch: dict[str, object] = {"stringData": string_data} if string_data else {}
        if removed:
            patch["data"] = removed
        result = await self.kube.patch(r.SECRETS, name, patch, ctx.namespace)
        self._patched[(ctx.namespace, name)] = (str(current.get("metadata", {}).get("resourceVersion")), result)
        for address in sorted(changes.issue):
            log.info("issued the Ray TLS certificate of %s in cluster %s/%s", address, ctx.namespace, ctx.name)

    async def _ca(self, ctx: ClusterContext, observed: Observed) -> certificates.KeyPair:
        """The cluster's CA from its Secret; made when there is none yet."""
        secret = observed.secrets.get(tls.ca_secret_name(ctx.name))
        if secret is None:
            pair = certificates.new_ca(f"{ctx.namespace}/{ctx.name} ray ca", CA_VALIDITY)
            secret = await self._create(ctx, tls.ca_secret(ctx, pair.cert_pem, pair.key_pem))
        cert, key = secret_value(secret, tls.CA_CERT_KEY), secret_value(secret, tls.CA_KEY_KEY)
        if not cert or not key:
            raise ValueError(f"Secret {ctx.namespace}/{tls.ca_secret_name(ctx.name)} holds no CA certificate and key")
        return certificates.KeyPair(cert, key)

    async def _create(self, ctx: ClusterContext, body: Body) -> Body:
        """Creates the Secret, or reads the one an earlier run made before its watch event arrived."""
        name = str(body["metadata"]["name"])
        try:
            created = await self.kube.create(r.SECRETS, body, ctx.namespace)
            log.info("created Secret %s/%s", ctx.namespace, name)
            return created
        except Conflict as error:
            if not error.already_exists:
                raise
        existing = await self.kube.get(r.SECRETS, name, ctx.namespace)
        if existing is None or not controlled_by(existing, ctx.uid):
            raise NameTaken(f"Secret {ctx.namespace}/{name} belongs to another owner")
        return existing
