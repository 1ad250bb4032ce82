"""The demo's Ray job: one task pinned to every alive node; prints who answered."""

import socket

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy


@ray.remote(num_cpus=0)
def where_am_i() -> tuple[str, str]:
    return socket.gethostname(), ray.get_runtime_context().get_node_id()


def main() -> None:
    ray.init()
    nodes = [n for n in ray.nodes() if n["Alive"]]
    tasks = [
        where_am_i.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
        for n in nodes
    ]
    answers = ray.get(tasks)
    for node, (host, node_id) in zip(nodes, answers, strict=True):
        print(f"node {node['NodeManagerAddress']:<15} {node_id[:12]} answered from {host}")
    took_part = {node_id for _, node_id in answers}
    print(f"{len(took_part)} of {len(nodes)} Ray nodes took part")
    if took_part != {n["NodeID"] for n in nodes}:
        raise SystemExit("not every node took part")


if __name__ == "__main__":
    main()
