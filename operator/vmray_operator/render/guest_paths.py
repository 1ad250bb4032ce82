"""Where a node's files live on its VM. cloud-init writes them; the Ray container sees GUEST_DIR read-only."""

GUEST_DIR = "/etc/vmray"
NODE_FILE = f"{GUEST_DIR}/node.json"  # the node's Ray command and environment, as data
AUTOSCALER_CONFIG = f"{GUEST_DIR}/autoscaler.yaml"
TOKEN_ENV = f"{GUEST_DIR}/token.env"  # the cluster ServiceAccount token: mode 0600, never on a command line
API_SERVER_CA = f"{GUEST_DIR}/api-server-ca.crt"
AUTOSCALER_CONFIG_SYNC = f"{GUEST_DIR}/autoscaler_config_sync.py"  # vmray_operator.guest.autoscaler_config_sync
# The config Ray's autoscaler reads, kept equal to the cluster's ConfigMap; under /tmp/ray, the one
# directory of the container that is the node's own and writable.
LIVE_AUTOSCALER_CONFIG = "/tmp/ray/vmray-autoscaler.yaml"
TLS_FETCH = f"{GUEST_DIR}/tls_fetch.py"  # vmray_operator.guest.tls_fetch
# The node's own certificate, key and the cluster CA, fetched at boot; the node's own writable directory.
TLS_DIR = "/tmp/ray/tls"
