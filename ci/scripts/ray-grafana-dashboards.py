"""Writes Ray's own Grafana dashboards, as the Ray this project pins generates them, into a directory.

The Ray dashboard's metrics views embed these dashboards by their uids (rayDefaultDashboard, ...), so the Grafana
that a cluster's spec.monitoring.grafana_url names must hold them; import the files, or point a Grafana
dashboard provider at the directory. They select a cluster by the ray_io_cluster label, which the scrape
configurations of carvel/monitoring set.

    .venv/bin/python ci/scripts/ray-grafana-dashboards.py build/grafana
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from ray.dashboard.modules.metrics import grafana_dashboard_factory as factory

GENERATORS: dict[str, Callable[[], tuple[str, str]]] = {
    "default": factory.generate_default_grafana_dashboard,
    "data": factory.generate_data_grafana_dashboard,
    "train": factory.generate_train_grafana_dashboard,
    "serve": factory.generate_serve_grafana_dashboard,
    "serve-deployment": factory.generate_serve_deployment_grafana_dashboard,
}


def main(argv: list[str]) -> int:
    directory = Path(argv[1] if len(argv) > 1 else "build/grafana")
    directory.mkdir(parents=True, exist_ok=True)
    for name, generate in GENERATORS.items():
        content, uid = generate()
        path = directory / f"ray-{name}-dashboard.json"
        path.write_text(json.dumps(json.loads(content), indent=2) + "\n")
        print(f"wrote {path} (uid {uid})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
