"""VM Operator's validating webhooks, for the local cloud: the rules of its webhooks/virtualmachine/validation and
webhooks/virtualmachineservice/validation (at the release whose CRDs the local cloud serves) that concern what
this operator writes, as ValidatingAdmissionPolicies (admissionregistration.k8s.io/v1, no webhook to run).

Each rule names the VM Operator check it follows and refuses with that check's words (`path: reason`). Left out:
rules that need other objects (the storage class assigned to the namespace, the image `imageName` resolves to,
VM class instances), rules about who asks (privileged accounts, VM Operator's own annotations and labels) and
features this operator does not use (volumes, CD-ROMs, crypto, readiness probes, zones, groups, snapshots).

As in VM Operator, an update of an object that is being deleted passes (removing finalizers must always work),
and the status subresource is not checked. The update rules compare with the VM as VM Operator's mutation left
it: a VM the simulator has not given its defaults yet (local/vmop_defaults.py) is one a Supervisor never stores,
so its updates (the first brings the defaults) are held to the rules of every write only."""

from __future__ import annotations

from dataclasses import dataclass

from vmray_operator.api.contract import VMOP_GROUP, Body
from vmray_operator.local.vmop_defaults import CREATED_AT_SCHEMA_VERSION

NAME_PREFIX = "vmray-local.vmoperator"
NOT_DELETING = "!has(object.metadata.deletionTimestamp)"
OLD_DEFAULTED = f"'{CREATED_AT_SCHEMA_VERSION}' in oldObject.metadata.?annotations.orValue({{}})"

# Patterns of Kubernetes' and VM Operator's name checks, in RE2 as CEL's matches() takes them.
DNS1123_LABEL = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS1035_LABEL = "^[a-z]([-a-z0-9]*[a-z0-9])?$"
HOST_NAME = "^[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?$"  # VM Operator's IsValidHostName, without emoji
LABEL_NAME = "^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$"
LABEL_VALUE = "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"


@dataclass(frozen=True)
class Rule:
    expression: str  # true: allowed
    message: str  # a CEL string expression: what the refusal says


def _text(words: str) -> str:
    """A CEL string literal."""
    return "'" + words.replace("\\", "\\\\").replace("'", "\\'") + "'"


# -- VirtualMachine --------------------------------------------------------------------------------------------

VM_VARIABLES = {
    "spec": "object.?spec.orValue({})",
    "bootstrap": "object.?spec.?bootstrap.orValue({})",
    "network": "object.?spec.?network.orValue({})",
    "interfaces": "object.?spec.?network.?interfaces.orValue([])",
    "hostName": "object.?spec.?network.?hostName.orValue('') != '' ? object.spec.network.hostName"
    " : object.metadata.name",
}

VM_EVERY_WRITE = (
    # validateBootstrap: "CloudInit may not be used with any other bootstrap provider"
    Rule(
        "!has(variables.bootstrap.cloudInit) || !(has(variables.bootstrap.linuxPrep)"
        " || has(variables.bootstrap.sysprep) || has(variables.bootstrap.vAppConfig))",
        _text("spec.bootstrap.cloudInit: Forbidden: CloudInit may not be used with any other bootstrap provider"),
    ),
    # validateBootstrap: "cloudConfig and rawCloudConfig are mutually exclusive"
    Rule(
        "!has(variables.bootstrap.cloudInit) || !(has(variables.bootstrap.cloudInit.cloudConfig)"
        " && has(variables.bootstrap.cloudInit.rawCloudConfig))",
        _text(
            'spec.bootstrap.cloudInit: Invalid value: "cloudInit": cloudConfig and rawCloudConfig are mutually'
            " exclusive"
        ),
    ),
    # validateBootstrap: "LinuxPrep may not be used with either CloudInit or Sysprep bootstrap providers"
    Rule(
        "!has(variables.bootstrap.linuxPrep) || !has(variables.bootstrap.sysprep)",
        _text(
            "spec.bootstrap.linuxPrep: Forbidden: LinuxPrep may not be used with either CloudInit or Sysprep"
            " bootstrap providers"
        ),
    ),
    # validateBootstrap: "sysprep and rawSysprep are mutually exclusive", "either sysprep or rawSysprep must be
    # provided"
    Rule(
        "!has(variables.bootstrap.sysprep) || has(variables.bootstrap.sysprep.sysprep) !="
        " has(variables.bootstrap.sysprep.rawSysprep)",
        "has(variables.bootstrap.sysprep.sysprep) ? "
        + _text('spec.bootstrap.sysprep: Invalid value: "sysPrep": sysprep and rawSysprep are mutually exclusive')
        + " : "
        + _text('spec.bootstrap.sysprep: Invalid value: "sysPrep": either sysprep or rawSysprep must be provided'),
    ),
    # validateBootstrap: "properties and rawProperties are mutually exclusive" (vAppConfig)
    Rule(
        "!has(variables.bootstrap.vAppConfig) || variables.bootstrap.vAppConfig.?properties.orValue([]).size() == 0"
        " || variables.bootstrap.vAppConfig.?rawProperties.orValue('') == ''",
        _text(
            'spec.bootstrap.vAppConfig: Invalid value: "vAppConfig": properties and rawProperties are mutually'
            " exclusive"
        ),
    ),
    # validateNetworkHostAndDomainName (ValidateHostAndDomainName): the host name, spec.network.hostName or else the
    # VM's name, must be an IP address or an RFC-1123 DNS label (at most 63 characters, no dots or underscores)
    Rule(
        f"isIP(variables.hostName) || variables.hostName.matches('{HOST_NAME}')",
        "(variables.network.?hostName.orValue('') != '' ? 'spec.network.hostName' : 'metadata.name')"
        " + ': Invalid value: \"' + variables.hostName + '\": host name must adhere to RFC-1123'",
    ),
    # validateNetwork: every spec.network.nameservers entry "must be an IPv4 or IPv6 address"
    Rule(
        "variables.network.?nameservers.orValue([]).all(n, isIP(n))"
        " && variables.interfaces.all(i, i.?nameservers.orValue([]).all(n, isIP(n)))",
        _text("spec.network.nameservers: Invalid value: must be an IPv4 or IPv6 address"),
    ),
    # validateNetworkInterfaceSpec: the network interface object VM Operator makes is named
    # "<vm>-<network>-<interface>" (or "<vm>-<interface>"), which must be a DNS-1123 subdomain
    Rule(
        "variables.interfaces.all(i, (i.?network.?name.orValue('') != '' ? object.metadata.name + '-' +"
        " i.network.name + '-' + i.name : object.metadata.name + '-' + i.name).matches('"
        + DNS1123_SUBDOMAIN
        + "') && size(object.metadata.name + '-' + i.?network.?name.orValue('') + '-' + i.name) <= 253)",
        _text(
            "spec.network.interfaces.name: Invalid value: is the resulting network interface name: a lowercase"
            " RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"
        ),
    ),
    # validateNetworkInterfaceSpec: every address a CIDR (net.ParseCIDR)
    Rule(
        "variables.interfaces.all(i, i.?addresses.orValue([]).all(a, isCIDR(a)))",
        _text("spec.network.interfaces.addresses: Invalid value: invalid CIDR address"),
    ),
    # validateNetworkInterfaceSpec: "gateway4 must have an IPv4 address in the addresses field", "must be a valid
    # IPv4 address" (and the same of gateway6 and IPv6); "None" means no gateway
    Rule(
        "variables.interfaces.all(i,"
        " (i.?gateway4.orValue('') in ['', 'None'] || (isIP(i.gateway4) && ip(i.gateway4).family() == 4"
        "  && i.?addresses.orValue([]).exists(a, isCIDR(a) && cidr(a).ip().family() == 4)))"
        " && (i.?gateway6.orValue('') in ['', 'None'] || (isIP(i.gateway6) && ip(i.gateway6).family() == 6"
        "  && i.?addresses.orValue([]).exists(a, isCIDR(a) && cidr(a).ip().family() == 6))))",
        _text(
            "spec.network.interfaces.gateway4: Invalid value: gateway4 must have an IPv4 address in the addresses"
            " field and be a valid IPv4 address (gateway6 likewise with IPv6)"
        ),
    ),
    # validateNetworkInterfaceSpec: "dhcp4 cannot be used with IPv4 addresses in addresses field", "gateway4 is
    # mutually exclusive with dhcp4" (and the same of dhcp6)
    Rule(
        "variables.interfaces.all(i,"
        " (!i.?dhcp4.orValue(false) || (i.?gateway4.orValue('') == ''"
        "  && !i.?addresses.orValue([]).exists(a, isCIDR(a) && cidr(a).ip().family() == 4)))"
        " && (!i.?dhcp6.orValue(false) || (i.?gateway6.orValue('') == ''"
        "  && !i.?addresses.orValue([]).exists(a, isCIDR(a) && cidr(a).ip().family() == 6))))",
        _text(
            "spec.network.interfaces.dhcp4: Invalid value: dhcp4 cannot be used with IPv4 addresses in addresses"
            " field or with gateway4 (dhcp6 likewise)"
        ),
    ),
)

VM_CREATE = (
    # validateClassOnCreate: a VM names its class
    Rule("variables.spec.?className.orValue('') != ''", _text("spec.className: Required value")),
    # validateImageOnCreate, after the mutation's ResolveImageNameOnCreate: a VM names its image (imageName, which
    # VM Operator resolves into spec.image, or spec.image itself) ...
    Rule(
        "variables.spec.?imageName.orValue('') != '' || has(variables.spec.image)",
        _text("spec.image: Required value"),
    ),
    # ... of a kind VM Operator knows
    Rule(
        "!has(variables.spec.image) || variables.spec.image.?kind.orValue('') in"
        " ['VirtualMachineImage', 'ClusterVirtualMachineImage']",
        "'spec.image.kind: Invalid value: \"' + variables.spec.image.?kind.orValue('') + '\": supported:"
        " VirtualMachineImage; ClusterVirtualMachineImage'",
    ),
    # validatePowerStateOnCreate: "cannot set a new VM's power state to Suspended"
    Rule(
        "variables.spec.?powerState.orValue('') != 'Suspended'",
        _text('spec.powerState: Invalid value: "Suspended": cannot set a new VM\'s power state to Suspended'),
    ),
)

VM_UPDATE_VARIABLES = {
    **VM_VARIABLES,
    "old": "oldObject.?spec.orValue({})",
    "oldBootstrap": "oldObject.?spec.?bootstrap.orValue({})",
    "cloudInit": "object.?spec.?bootstrap.?cloudInit.orValue({})",
    "oldCloudInit": "oldObject.?spec.?bootstrap.?cloudInit.orValue({})",
    "oldInterfaces": "oldObject.?spec.?network.?interfaces.orValue([])",
}

VM_UPDATE = (
    # validateImageOnUpdate: imageName and image are immutable
    Rule(
        "variables.spec.?imageName.orValue('') == variables.old.?imageName.orValue('')",
        _text("spec.imageName: Invalid value: field is immutable"),
    ),
    Rule(
        "variables.spec.?image == variables.old.?image",
        _text("spec.image: Invalid value: field is immutable"),
    ),
    # validateClassOnUpdate: the class is immutable (VM Operator without its VMResize features, as on vSphere 8
    # Supervisors; with them a class change resizes the VM)
    Rule(
        "variables.spec.?className.orValue('') == variables.old.?className.orValue('')",
        _text("spec.className: Invalid value: field is immutable"),
    ),
    # validateImmutableFields: storageClass is immutable; biosUUID and instanceUUID once set
    Rule(
        "variables.spec.?storageClass.orValue('') == variables.old.?storageClass.orValue('')",
        _text("spec.storageClass: Invalid value: field is immutable"),
    ),
    Rule(
        "variables.old.?biosUUID.orValue('') == '' || variables.spec.?biosUUID.orValue('') == variables.old.biosUUID",
        _text("spec.biosUUID: Invalid value: field is immutable"),
    ),
    Rule(
        "variables.old.?instanceUUID.orValue('') == ''"
        " || variables.spec.?instanceUUID.orValue('') == variables.old.instanceUUID",
        _text("spec.instanceUUID: Invalid value: field is immutable"),
    ),
    # validateImmutableNetwork (VM Operator without its MutableNetworks feature): interfaces are neither added nor
    # removed, and each keeps its name, network and MAC address
    Rule(
        "size(variables.interfaces) == size(variables.oldInterfaces)",
        _text("spec.network.interfaces: Forbidden: network interfaces cannot be added or removed"),
    ),
    Rule(
        "size(variables.interfaces) != size(variables.oldInterfaces) || variables.interfaces.all(i,"
        " variables.oldInterfaces.exists(o, o.name == i.name && o.?network == i.?network"
        " && o.?macAddr.orValue('') == i.?macAddr.orValue('')))",
        _text("spec.network.interfaces: Forbidden: field is immutable (name, network, macAddr)"),
    ),
    # validateBootstrapProviderImmutable: "bootstrap provider type cannot be changed"
    Rule(
        "!has(variables.old.bootstrap) || ["
        "!has(variables.old.bootstrap.cloudInit) || has(variables.bootstrap.cloudInit),"
        " !has(variables.old.bootstrap.linuxPrep) || has(variables.bootstrap.linuxPrep),"
        " !has(variables.old.bootstrap.sysprep) || has(variables.bootstrap.sysprep)].all(ok, ok)",
        _text("spec.bootstrap: Forbidden: bootstrap provider type cannot be changed"),
    ),
    # validateUpdatesWhenPoweredOn (VM Operator 1.8 and 1.9, which vSphere 8 Supervisors run): the bootstrap of a VM
    # that is and stays powered on is unchanged, but for filling in the cloud-init instance ID
    Rule(
        "!(variables.old.?powerState.orValue('') == 'PoweredOn' && variables.spec.?powerState.orValue('') =="
        " 'PoweredOn') || (["
        "variables.old.?bootstrap.?linuxPrep == variables.bootstrap.?linuxPrep,"
        " variables.old.?bootstrap.?sysprep == variables.bootstrap.?sysprep,"
        " variables.old.?bootstrap.?vAppConfig == variables.bootstrap.?vAppConfig,"
        " has(variables.oldBootstrap.cloudInit) == has(variables.bootstrap.cloudInit)].all(ok, ok)"
        " && variables.oldCloudInit.all(k, k == 'instanceID' || variables.oldCloudInit[?k] == variables.cloudInit[?k])"
        " && variables.cloudInit.all(k, k == 'instanceID' || variables.oldCloudInit[?k] == variables.cloudInit[?k])"
        " && (variables.oldCloudInit.?instanceID.orValue('') == ''"
        "  || variables.oldCloudInit.instanceID == variables.cloudInit.?instanceID.orValue('')))",
        _text("spec.bootstrap: Forbidden: updates to this field is not allowed when VM power is on"),
    ),
    # validatePowerStateOnUpdate: "cannot set power state to empty string", "cannot suspend a VM that is powered off"
    Rule(
        "variables.spec.?powerState.orValue('') != ''",
        _text('spec.powerState: Invalid value: "": cannot set power state to empty string'),
    ),
    Rule(
        "!(variables.old.?powerState.orValue('') == 'PoweredOff' && variables.spec.?powerState.orValue('') =="
        " 'Suspended')",
        _text('spec.powerState: Invalid value: "Suspended": cannot suspend a VM that is powered off'),
    ),
)

# -- VirtualMachineService -------------------------------------------------------------------------------------

SERVICE_VARIABLES = {
    "spec": "object.?spec.orValue({})",
    "type": "object.?spec.?type.orValue('')",
    "ports": "object.?spec.?ports.orValue([])",
    "headless": "object.?spec.?clusterIp.orValue('') == 'None'",
}

SERVICE_EVERY_WRITE = (
    # validateSpec: a type, and one VM Operator supports
    Rule(
        "variables.type in ['LoadBalancer', 'ClusterIP', 'ExternalName']",
        "variables.type == '' ? 'spec.type: Required value' : 'spec.type: Unsupported value: \"' + variables.type"
        ' + \'": supported values: "ClusterIP", "ExternalName", "LoadBalancer"\'',
    ),
    # validateSpec: a LoadBalancer "may not be set to 'None'" (headless)
    Rule(
        "variables.type != 'LoadBalancer' || !variables.headless",
        _text("spec.clusterIP: Invalid value: \"None\": may not be set to 'None' for LoadBalancer services"),
    ),
    # validatePorts: ports are required unless the service is headless or an ExternalName
    Rule(
        "size(variables.ports) > 0 || variables.headless || variables.type == 'ExternalName'",
        _text("spec.ports: Required value"),
    ),
    # validateServicePort: with more than one port each has a name, a DNS-1123 label, unique among them
    Rule(
        "variables.ports.all(p, p.?name.orValue('') == '' ? size(variables.ports) == 1 : (p.name.matches('"
        + DNS1123_LABEL
        + "') && size(p.name) <= 63 && variables.ports.filter(q, q.?name.orValue('') == p.name).size() == 1))",
        _text(
            "spec.ports.name: Invalid value: each port needs a name (a DNS-1123 label) unique among the"
            " service's ports when there are several"
        ),
    ),
    # validateServicePort: port and targetPort are valid port numbers (1 to 65535)
    Rule(
        "variables.ports.all(p, p.?port.orValue(0) >= 1 && p.?port.orValue(0) <= 65535"
        " && p.?targetPort.orValue(0) >= 1 && p.?targetPort.orValue(0) <= 65535)",
        _text("spec.ports.port: Invalid value: must be between 1 and 65535, inclusive (targetPort too)"),
    ),
    # validateServicePort: a protocol VM Operator supports
    Rule(
        "variables.ports.all(p, p.?protocol.orValue('') in ['TCP', 'UDP', 'SCTP'])",
        _text('spec.ports.protocol: Unsupported value: supported values: "SCTP", "TCP", "UDP"'),
    ),
    # validatePorts: no two ports of the same protocol and number
    Rule(
        "variables.ports.all(p, variables.ports.filter(q, q.?protocol == p.?protocol && q.?port == p.?port)"
        ".size() == 1)",
        _text("spec.ports: Duplicate value: a protocol and port appear twice"),
    ),
    # validateSpec (ValidateLabels): the selector is made of valid label keys and values
    Rule(
        "variables.spec.?selector.orValue({}).all(k, (k.split('/').size() == 1 ? k : k.split('/')[1]).matches('"
        + LABEL_NAME
        + "') && size(k.split('/')[k.split('/').size() - 1]) <= 63 && (k.split('/').size() == 1 || (k.split('/')"
        ".size() == 2 && k.split('/')[0].matches('"
        + DNS1123_SUBDOMAIN
        + "') && size(k.split('/')[0]) <= 253)) && variables.spec.selector[k].matches('"
        + LABEL_VALUE
        + "') && size(variables.spec.selector[k]) <= 63)",
        _text("spec.selector: Invalid value: label keys and values must be valid Kubernetes labels"),
    ),
    # validateSpec: loadBalancerSourceRanges "may only be used when `type` is 'LoadBalancer'", each a CIDR
    Rule(
        "variables.spec.?loadBalancerSourceRanges.orValue([]).size() == 0 || variables.type == 'LoadBalancer'",
        _text("spec.loadBalancerSourceRanges: Forbidden: may only be used when `type` is 'LoadBalancer'"),
    ),
    Rule(
        "variables.spec.?loadBalancerSourceRanges.orValue([]).all(r, isCIDR(r.trim()))",
        _text("spec.loadBalancerSourceRanges: Invalid value: must be compatible with net.ParseCIDR"),
    ),
)

SERVICE_CREATE = (
    # validateMetadata: the service's name is a DNS-1035 label (it names a Kubernetes Service too)
    Rule(
        f"object.metadata.name.matches('{DNS1035_LABEL}') && size(object.metadata.name) <= 63",
        "'metadata.name: Invalid value: \"' + object.metadata.name + '\": a DNS-1035 label must consist of lower"
        " case alphanumeric characters or \\'-\\', start with an alphabetic character, and end with an alphanumeric"
        " character'",
    ),
)

SERVICE_UPDATE = (
    # validateAllowedChanges: type and clusterIP are immutable
    Rule(
        "variables.type == oldObject.?spec.?type.orValue('')",
        _text("spec.type: Forbidden: field is immutable"),
    ),
    Rule(
        "object.?spec.?clusterIp.orValue('') == oldObject.?spec.?clusterIp.orValue('')",
        _text("spec.clusterIP: Forbidden: field is immutable"),
    ),
)


# -- policies --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    name: str
    plural: str
    operations: tuple[str, ...]
    variables: dict[str, str]
    rules: tuple[Rule, ...]
    conditions: tuple[str, ...] = ()

    def body(self) -> Body:
        return {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": self.name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [VMOP_GROUP],
                            "apiVersions": ["*"],
                            "operations": list(self.operations),
                            "resources": [self.plural],
                        }
                    ]
                },
                "matchConditions": [
                    {"name": f"condition-{i}", "expression": c} for i, c in enumerate((NOT_DELETING, *self.conditions))
                ],
                "variables": [{"name": k, "expression": v} for k, v in self.variables.items()],
                "validations": [
                    {"expression": rule.expression, "messageExpression": rule.message, "reason": "Invalid"}
                    for rule in self.rules
                ],
            },
        }

    def binding(self) -> Body:
        return {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": self.name},
            "spec": {"policyName": self.name, "validationActions": ["Deny"]},
        }


POLICIES = (
    Policy(f"{NAME_PREFIX}.virtualmachine", "virtualmachines", ("CREATE", "UPDATE"), VM_VARIABLES, VM_EVERY_WRITE),
    Policy(f"{NAME_PREFIX}.virtualmachine-create", "virtualmachines", ("CREATE",), VM_VARIABLES, VM_CREATE),
    Policy(
        f"{NAME_PREFIX}.virtualmachine-update",
        "virtualmachines",
        ("UPDATE",),
        VM_UPDATE_VARIABLES,
        VM_UPDATE,
        (OLD_DEFAULTED,),
    ),
    Policy(
        f"{NAME_PREFIX}.virtualmachineservice",
        "virtualmachineservices",
        ("CREATE", "UPDATE"),
        SERVICE_VARIABLES,
        SERVICE_EVERY_WRITE,
    ),
    Policy(
        f"{NAME_PREFIX}.virtualmachineservice-create",
        "virtualmachineservices",
        ("CREATE",),
        SERVICE_VARIABLES,
        SERVICE_CREATE,
    ),
    Policy(
        f"{NAME_PREFIX}.virtualmachineservice-update",
        "virtualmachineservices",
        ("UPDATE",),
        SERVICE_VARIABLES,
        SERVICE_UPDATE,
    ),
)
