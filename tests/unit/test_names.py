"""Names the operator derives: two clusters of a namespace never share one, whatever their names and node types."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.support.specs import sample_spec
from vmray_operator.reconcile.spec_checks import nounce_problem, without_foreign_workers
from vmray_operator.render import identity, names
from vmray_operator.render.autoscaler import config_map_name
from vmray_operator.render.names import ClusterSecret

LABEL = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,12}[a-z0-9])?", fullmatch=True)
NODE_TYPE = st.from_regex(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,20}[A-Za-z0-9])?", fullmatch=True)
NOUNCE = st.text(alphabet=names.SUFFIX_ALPHABET, min_size=8, max_size=8)


def _derived(cluster: str, node_types: list[str], nounce: str, workers: list[str]) -> dict[str, set[str]]:
    """Every name the operator derives for a cluster, by the kind of object it names."""
    secrets = {ClusterSecret.CA.of(cluster), ClusterSecret.CERTIFICATES.of(cluster), ClusterSecret.SA_TOKEN.of(cluster)}
    secrets |= {ClusterSecret.RAY_CLIENT.of(cluster), ClusterSecret.RAY_TOKEN.of(cluster)}
    secrets |= {names.bootstrap_secret_name(cluster, role, t) for t in node_types for role in ("head", "worker")}
    return {
        "Secret": secrets,
        "VirtualMachine": {names.head_vm_name(cluster, nounce)} | {names.worker_vm_name(cluster, w) for w in workers},
        "ConfigMap": {config_map_name(cluster)},
        "ServiceAccount": {identity.service_account_name(cluster)},
    }


@given(
    LABEL,
    LABEL,
    st.lists(NODE_TYPE, min_size=1, max_size=4),
    st.lists(NODE_TYPE, min_size=1, max_size=4),
    NOUNCE,
    NOUNCE,
    st.lists(NOUNCE, max_size=3),
)
def test_a_cluster_and_one_named_after_it_share_no_name(
    first: str, rest: str, types_a: list[str], types_b: list[str], nounce_a: str, nounce_b: str, workers: list[str]
) -> None:
    a, b = first, f"{first}-{rest}"  # b starts with a's name: where today's collisions came from
    names_a = _derived(a, types_a, nounce_a, workers)
    names_b = _derived(b, types_b, nounce_b, workers)
    for kind in names_a:
        assert not names_a[kind] & names_b[kind], kind


def test_the_collision_of_old_is_gone() -> None:
    """Cluster `a` with node type `b-head-x` and cluster `a-worker-b` with node type `head-x` met before."""
    assert names.bootstrap_secret_name("a", "worker", "b-head-x") != names.bootstrap_secret_name(
        "a-worker-b", "head", "x"
    )
    assert names.bootstrap_secret_name("a", "worker", "b-head-x").count("-") == 2


def test_only_this_clusters_worker_names_in_rays_form_are_taken() -> None:
    spec = sample_spec(
        autoscaler_desired_workers={
            "test-ray-w-abcd1234": "ray.worker.default",
            "test-ray-b-h-abcd1234": "ray.worker.default",  # the head of cluster test-ray-b
            "test-ray-w-ABCD1234": "ray.worker.default",
            "test-ray-w-abc": "ray.worker.default",
            "other-w-abcd1234": "ray.worker.default",
        }
    )
    kept, problems = without_foreign_workers(spec, "test-ray")
    assert kept.autoscaler_desired_workers == {"test-ray-w-abcd1234": "ray.worker.default"}
    assert len(problems) == 4
    assert all(p.startswith("autoscaler_desired_workers: ") for p in problems)
    assert any("test-ray-b-h-abcd1234 is not of the form test-ray-w-" in p for p in problems)


def test_a_nounce_must_be_letters_and_digits_that_fit_the_vm_name() -> None:
    assert nounce_problem("test-ray", "n0unce12") is None
    assert nounce_problem("test-ray", "x-w-abcdefgh") is not None  # would be test-ray-h-x-w-..., another's worker
    assert nounce_problem("test-ray", "") is not None
    assert nounce_problem("c" * 40, "a" * 21) is not None
    assert nounce_problem("c" * 40, "a" * 20) is None


def test_every_secret_suffix_holds_exactly_one_dash() -> None:
    """What makes names of two clusters never meet (see ClusterSecret)."""
    for secret in names.ClusterSecret:
        assert secret.value.count("-") == 1, secret
    for role in (names.ROLE_HEAD, names.ROLE_WORKER):
        suffix = names.bootstrap_secret_name("c", role, "any.type-name").removeprefix("c-")
        assert suffix.count("-") == 1, suffix
