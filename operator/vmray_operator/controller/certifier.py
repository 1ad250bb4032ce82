"""Keeps a cluster's Ray TLS material: its CA (made once, never leaves the operator's Secret) and a
certificate for every node address, issued into the certificates Secret the nodes read at boot."""

from __future__ import annotations

import datetime
import logging

from vmray_operator import certificates
from vmray_operator.api.contract import Body
from vmray_operator.controller.own_writes import OwnWrites
from vmray_operator.controller.ownership import NameTaken, create_owned
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube
from vmray_operator.reconcile.observed import Observed, secret_value, version
from vmray_operator.reconcile.tls import CertificateChanges, certificate_changes, wanted_certificates
from vmray_operator.render import tls
from vmray_operator.render.context import ClusterContext
from vmray_operator.render.names import ClusterSecret

log = logging.getLogger("vmray.tls")
CA_VALIDITY = datetime.timedelta(days=3650)
# Ray reads a node's certificate when it starts; a cluster that outlives this is rolled to new VMs.
NODE_VALIDITY = datetime.timedelta(days=825)


class Certifier:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._written: OwnWrites[Body] = OwnWrites()  # the Secrets this certifier made or patched, by name

    def forget(self, namespace: str, cluster: str) -> None:
        for name in (
            ClusterSecret.CA.of(cluster),
            ClusterSecret.CERTIFICATES.of(cluster),
            ClusterSecret.RAY_CLIENT.of(cluster),
        ):
            self._written.forget((namespace, name))

    def _held(self, ctx: ClusterContext, name: str, observed: Observed) -> Body | None:
        """The Secret as the API server holds it, as far as this operator knows."""
        current = observed.secrets.get(name)
        held = self._written.held((ctx.namespace, name), ctx.uid, version(current))
        return held if held is not None else current

    def _record(self, ctx: ClusterContext, name: str, observed: Observed, result: Body) -> None:
        self._written.record(
            (ctx.namespace, name), ctx.uid, version(observed.secrets.get(name)), result, version(result)
        )

    async def ensure_ca(self, ctx: ClusterContext, observed: Observed) -> str:
        """Makes the cluster's CA if it has none, and a Ray client's certificate of it; the CA Secret's name."""
        ca = await self._ca(ctx, observed)
        client = ClusterSecret.RAY_CLIENT.of(ctx.name)
        if self._held(ctx, client, observed) is None:
            pair = certificates.issue(
                ca, certificates.name(f"{ctx.name} ray client"), [certificates.CLIENT_AUTH], NODE_VALIDITY
            )
            await self._create(ctx, tls.client_secret(ctx, ca.cert_pem, pair.cert_pem, pair.key_pem), observed)
        return ClusterSecret.CA.of(ctx.name)

    async def ensure(self, ctx: ClusterContext, observed: Observed, head_name: str) -> None:
        """Issues what is missing of the nodes' certificates and drops those of addresses gone."""
        ca = await self._ca(ctx, observed)
        name = ClusterSecret.CERTIFICATES.of(ctx.name)
        wanted = wanted_certificates(observed, head_name)
        current = self._held(ctx, name, observed)
        if current is None:
            # made with the first certificates, in one call
            first = certificate_changes(wanted, None)
            if not first:
                return
            body = tls.certificates_secret(ctx, ca.cert_pem)
            body["stringData"].update(self._issue(ctx, ca, first))
            current, created = await self._create(ctx, body, observed)
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
        self._record(ctx, name, observed, result)
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
        secret = self._held(ctx, ClusterSecret.CA.of(ctx.name), observed)
        if secret is None:
            pair = certificates.new_ca(f"{ctx.namespace}/{ctx.name} ray ca", CA_VALIDITY)
            secret, _ = await self._create(ctx, tls.ca_secret(ctx, pair.cert_pem, pair.key_pem), observed)
        cert, key = secret_value(secret, tls.CA_CERT_KEY), secret_value(secret, tls.CA_KEY_KEY)
        if not cert or not key:
            raise ValueError(f"Secret {ctx.namespace}/{ClusterSecret.CA.of(ctx.name)} holds no CA certificate and key")
        return certificates.KeyPair(cert, key)

    async def _create(self, ctx: ClusterContext, body: Body, observed: Observed) -> tuple[Body, bool]:
        """Creates the Secret (True), or reads the one an earlier run made before its watch event arrived."""
        name = str(body["metadata"]["name"])
        made, created = await create_owned(self.kube, r.SECRETS, body, ctx.namespace, ctx.uid)
        if made is None:
            raise NameTaken(f"Secret {ctx.namespace}/{name} went away while being made", earlier=True)
        if created:
            log.info("created Secret %s/%s", ctx.namespace, name)
            self._record(ctx, name, observed, made)
        return made, created
