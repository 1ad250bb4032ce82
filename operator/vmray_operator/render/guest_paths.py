"""Where a node's files live on its VM. cloud-init writes them; the Ray container sees GUEST_DIR read-only."""

GUEST_DIR = "/etc/vmray"
INITIALIZE_SCRIPT = f"{GUEST_DIR}/initialize.sh"  # initialization_commands, run on the VM by cloud-init
SETUP_SCRIPT = f"{GUEST_DIR}/setup.sh"  # the setup commands, run in the Ray container before Ray starts
NODE_SCRIPT = "/usr/local/bin/vmray-ray-node"  # starts the Ray container; the node's systemd unit runs it
NODE_UNIT = "vmray-ray.service"
NODE_UNIT_FILE = f"/etc/systemd/system/{NODE_UNIT}"
# The node's own writable directory on the VM, which the Ray container sees at the same path: the scripts of
# commands leave their outcome there, and the node script reports it to VM Operator.
STATE_DIR = "/var/lib/vmray"
INITIALIZATION_OUTCOME = f"{STATE_DIR}/initialization.condition"
SETUP_OUTCOME = f"{STATE_DIR}/setup.condition"
# The guestinfo key whose value a guest sets ("true|false,reason,message"): VM Operator shows it as the VM's
# GuestBootstrap condition.
BOOTSTRAP_CONDITION_KEY = "guestinfo.vmservice.bootstrap.condition"
AUTOSCALER_CONFIG = f"{GUEST_DIR}/autoscaler.yaml"
TOKEN_ENV = f"{GUEST_DIR}/token.env"  # the cluster ServiceAccount token: mode 0600, never on a command line
API_SERVER_CA = f"{GUEST_DIR}/api-server-ca.crt"
# The config Ray's autoscaler reads, kept equal to the cluster's ConfigMap; under /tmp/ray, the one
# directory of the container that is the node's own and writable.
LIVE_AUTOSCALER_CONFIG = "/tmp/ray/vmray-autoscaler.yaml"
NODE_AGENT = f"{GUEST_DIR}/node_agent.py"  # vmray_operator.guest.node_agent
# The node's own certificate, key and the cluster CA, fetched at boot; the node's own writable directory.
TLS_DIR = "/tmp/ray/tls"
# The cluster's Ray token, fetched at boot beside the certificate (mode 0600); RAY_AUTH_TOKEN_PATH names it.
AUTH_TOKEN_FILE = "/tmp/ray/auth/token"
