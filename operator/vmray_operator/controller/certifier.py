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
from vmray_operator.reconcile.tls import CertificateChanges, certificate_changes, wanted_certificates
from vmray_operator.render import tls
from vmray_operator.render.context import ClusterContext

log = logging.getLogger("vmray.tls")
CA_VALIDITY = datetime.timedelta(days=3650)
# Ray reads a node's certificate when it starts; a cluster that outlives this is rolled to new VMs.
NODE_VALIDITY = datetime.timedelta(days=825)


class Certifier:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        # Per Secret: what this certifier's last create or patch made, and the versions of the Secret it
        # supersedes ("" for none). While the watch still shows one of those, what was made is what is held.
        self._made: dict[tuple[str, str], tuple[frozenset[str], Body]] = {}

    def forget(self, namespace: str, cluster: str) -> None:
        for name in (tls.ca_secret_name(cluster), tls.certificates_secret_name(cluster)):
            self._made.pop((namespace, name), None)

    def _held(self, ctx: ClusterContext, name: str, observed: Observed) -> Body | None:
        """The Secret as the API server holds it, as far as this operator knows."""
        current = observed.secrets.get(name)
        made = self._made.get((ctx.namespace, name))
        if made is None or not controlled_by(made[1], ctx.uid):  # nothing made, or for a deleted namesake
            return current
        version = str((current or {}).get("metadata", {}).get("resourceVersion", ""))
        return made[1] if version in made[0] else current

    def _remember(self, namespace: str, name: str, based_on: Body | None, result: Body) -> None:
        version = str((based_on or {}).get("metadata", {}).get("resourceVersion", ""))
        earlier = self._made.get((namespace, name))
        superseded = {version}
        if earlier is not None and earlier[1] is based_on:  # based on an earlier write the watch has not shown
            superseded |= earlier[0]
        self._made[(namespace, name)] = (frozenset(superseded), result)

    async def ensure_ca(self, ctx: ClusterContext, observed: Observed) -> str:
        """Makes the cluster's CA if it has none; its Secret's name."""
        await self._ca(ctx, observed)
        return tls.ca_secret_name(ctx.name)

    async def ensure(self, ctx: ClusterContext, observed: Observed, head_name: str) -> None:
        """Issues what is missing of the nodes' certificates and drops those of addresses gone."""
        ca = await self._ca(ctx, observed)
        name = tls.certificates_secret_name(ctx.name)
        wanted = wanted_certificates(observed, head_name)
        current = self._held(ctx, name, observed)
        if current is None:
            # made with the first certificates, in one call
            first = certificate_changes(wanted, None)
            if not first:
                return
            body = tls.certificates_secret(ctx, ca.cert_pem)
            body["stringData"].update(self._issue(ctx, ca, first))
            current, created = await self._create(ctx, body)
            if created:
                self._log_issued(ctx, first)
                return
        changes = certificate_changes(wanted, current)
        if not changes:
            return
        patch: dict[str, object] = {"stringData": self._issue(ctx, ca, changes)} if changes.issue else {}
        if changes.drop:
            patch["data"] = {
                key: None for a in changes.drop for key in (tls.cert_key(a), tls.key_key(a), tls.sans_key(a))
            }
        result = await self.kube.patch(r.SECRETS, name, patch, ctx.namespace)
        self._remember(ctx.namespace, name, current, result)
        self._log_issued(ctx, changes)

    def _issue(self, ctx: ClusterContext, ca: certificates.KeyPair, changes: CertificateChanges) -> dict[str, str]:
        """The certificates Secret's entries for the addresses to issue: certificate, key and what it names."""
        entries: dict[str, str] = {}
        for address, ips in sorted(changes.issue.items()):
            pair = certificates.issue(
                ca,
                certificates.name(f"{ctx.name} ray node {address}"),
                [certificates.SERVER_AUTH, certificates.CLIENT_AUTH],
                NODE_VALIDITY,
                ips=ips,
                dns_names=tls.LOCAL_NAMES,
            )
            entries[tls.cert_key(address)] = pair.cert_pem
            entries[tls.key_key(address)] = pair.key_pem
            entries[tls.sans_key(address)] = ",".join(ips)
        return entries

    def _log_issued(self, ctx: ClusterContext, changes: CertificateChanges) -> None:
        for address in sorted(changes.issue):
            log.info("issued the Ray TLS certificate of %s in cluster %s/%s", address, ctx.namespace, ctx.name)

    async def _ca(self, ctx: ClusterContext, observed: Observed) -> certificates.KeyPair:
        """The cluster's CA from its Secret; made when there is none yet."""
        secret = self._held(ctx, tls.ca_secret_name(ctx.name), observed)
        if secret is None:
            pair = certificates.new_ca(f"{ctx.namespace}/{ctx.name} ray ca", CA_VALIDITY)
            secret, _ = await self._create(ctx, tls.ca_secret(ctx, pair.cert_pem, pair.key_pem))
        cert, key = secret_value(secret, tls.CA_CERT_KEY), secret_value(secret, tls.CA_KEY_KEY)
        if not cert or not key:
            raise ValueError(f"Secret {ctx.namespace}/{tls.ca_secret_name(ctx.name)} holds no CA certificate and key")
        return certificates.KeyPair(cert, key)

    async def _create(self, ctx: ClusterContext, body: Body) -> tuple[Body, bool]:
        """Creates the Secret (True), or reads the one an earlier run made before its watch event arrived."""
        name = str(body["metadata"]["name"])
        try:
            created = await self.kube.create(r.SECRETS, body, ctx.namespace)
            log.info("created Secret %s/%s", ctx.namespace, name)
            self._remember(ctx.namespace, name, None, created)
            return created, True
        except Conflict as error:
            if not error.already_exists:
                raise
        existing = await self.kube.get(r.SECRETS, name, ctx.namespace)
        if existing is None or not controlled_by(existing, ctx.uid):
            raise NameTaken(f"Secret {ctx.namespace}/{name} belongs to another owner")
        return existing, False
