#!/usr/bin/env python3
"""Create, renew, check and re-create a cloudlet's FABRIC slice from a spec, then deploy it.

    cloudlet_slice.py validate [--spec slice.yml]
    cloudlet_slice.py check    [--spec slice.yml] [--dry-run]
    cloudlet_slice.py create   [--spec slice.yml] [--dry-run] [--no-deploy]
    cloudlet_slice.py renew    [--spec slice.yml] [--dry-run]
    cloudlet_slice.py recreate [--spec slice.yml] [--dry-run] [--no-deploy]
    cloudlet_slice.py up       [--spec slice.yml] [--dry-run]   # create if missing or broken, renew, deploy
    cloudlet_slice.py deploy   [--spec slice.yml] [--dry-run]

--dry-run prints every fablib call it would make, one per line, and never imports fablib
(fabrictestbed-extensions), so it runs anywhere python3, python3-yaml and python3-jsonschema do.
Without --dry-run, fablib reads its usual configuration (~/.fabric/fabric_rc or FABRIC_* env).
"""
import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import tempfile

import yaml
import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))
STABLE = ("StableOK",)
EXT_NET = "net-public"
INST_NET = "net-instrument"


class SpecError(Exception):
    pass


def load_spec(path):
    """The spec, validated against slice.schema.json; every problem reported at once."""
    with open(path, encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    with open(os.path.join(HERE, "slice.schema.json"), encoding="utf-8") as f:
        schema = json.load(f)
    validator = jsonschema.Draft7Validator(schema)
    problems = sorted(validator.iter_errors(spec), key=lambda e: list(e.absolute_path))
    if problems:
        lines = ["%s: %s" % ("/".join(str(p) for p in e.absolute_path) or "(top)", e.message) for e in problems]
        raise SpecError("%s: %d problem(s):\n  %s" % (path, len(lines), "\n  ".join(lines)))
    base = os.path.dirname(os.path.abspath(path))
    for key in ("inventory", "playbook"):
        spec["deploy"][key] = os.path.normpath(os.path.join(base, spec["deploy"][key]))
    return spec


class Recorder:
    """Stands in for fablib in --dry-run: prints each call and returns a named placeholder."""

    def __init__(self, name, out):
        self._name = name
        self._out = out

    def __getattr__(self, attr):
        def call(*args, **kwargs):
            shown = [repr(a) for a in args] + ["%s=%r" % kv for kv in kwargs.items()]
            expr = "%s.%s(%s)" % (self._name, attr, ", ".join(shown))
            self._out.write(expr + "\n")
            return Recorder(_short(attr, expr), self._out)
        return call

    def __getitem__(self, index):
        return Recorder("%s[%r]" % (self._name, index), self._out)

    def __repr__(self):
        return self._name

    __str__ = __repr__


def _short(attr, expr):
    """A readable name for what a call returns ("slice", "node", "component"...)."""
    names = {"new_slice": "slice", "get_slice": "slice", "add_node": "node", "get_node": "node",
             "add_component": "component", "get_interfaces": "interfaces", "get_interface": "iface",
             "add_facility_port": "facility_port", "get_network": "net", "add_l3network": "net",
             "add_l2network": "net"}
    return names.get(attr, attr[4:] if attr.startswith("get_") else "<%s>" % expr)


class NotFound(Exception):
    pass


class Fabric:
    """The fablib calls this tool makes, in one place, real or recorded."""

    def __init__(self, dry_run, out=sys.stdout):
        self.dry_run = dry_run
        self.out = out
        if dry_run:
            self.fablib = Recorder("fablib", out)
        else:
            # Imported here only: --dry-run and validate must work without fablib installed.
            from fabrictestbed_extensions.fablib.fablib import FablibManager  # pylint: disable=import-outside-toplevel
            self.fablib = FablibManager()

    def get_slice(self, name):
        if self.dry_run:
            self.out.write("fablib.get_slice(name=%r)  # dry run: taken as absent\n" % name)
            raise NotFound(name)
        try:
            return self.fablib.get_slice(name=name)
        except Exception as err:  # fablib raises a bare Exception for an unknown slice
            raise NotFound(name) from err


def lease_end(days):
    end = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)
    return end.strftime("%Y-%m-%d %H:%M:%S %z")


def build(fab, spec):
    """Declares the slice of the spec and submits it; returns the slice."""
    node_spec, net = spec["node"], spec["network"]
    s = fab.fablib.new_slice(name=spec["slice"]["name"])
    node = s.add_node(name=node_spec["name"], site=node_spec["site"], image=node_spec["image"],
                      cores=node_spec["cores"], ram=node_spec["ram_gb"], disk=node_spec["disk_gb"])
    for i, gpu in enumerate(node_spec.get("gpus", [])):
        for j in range(gpu.get("count", 1)):
            node.add_component(model=gpu["model"], name="gpu%d%d" % (i, j))
    for i, nvme in enumerate(node_spec.get("nvme", [])):
        for j in range(nvme.get("count", 1)):
            node.add_component(model=nvme["model"], name="nvme%d%d" % (i, j))
    public_if = node.add_component(model="NIC_Basic", name="nic-public").get_interfaces()[0]
    s.add_l3network(name=EXT_NET, interfaces=[public_if], type="IPv4Ext")
    fp = net.get("facility_port")
    if fp:
        inst_if = node.add_component(model="NIC_Basic", name="nic-instrument").get_interfaces()[0]
        port = s.add_facility_port(name=fp["name"], site=fp["site"], vlan=str(fp["vlan"]))
        s.add_l2network(name=INST_NET, interfaces=[inst_if, port.get_interfaces()[0]])
    s.submit()
    # FABNetv4Ext hands out a subnet; one address must be made publicly routable, then submitted.
    s = fab.fablib.get_slice(name=spec["slice"]["name"])
    ext = s.get_network(name=EXT_NET)
    address = ext.get_available_ips()[0]
    ext.make_ip_publicly_routable(ipv4=[str(address)])
    s.submit()
    s.renew(lease_end(spec["slice"].get("lease_days", 14)))
    return s


def check(fab, spec):
    """(ok, reasons): exists, StableOK, the node active, lease not about to end."""
    try:
        s = fab.get_slice(spec["slice"]["name"])
    except NotFound:
        return False, ["slice %s does not exist" % spec["slice"]["name"]]
    reasons = []
    state = s.get_state()
    if state not in STABLE:
        reasons.append("slice state %s" % state)
    node = s.get_node(name=spec["node"]["name"])
    if node.get_reservation_state() != "Active":
        reasons.append("node %s is %s" % (spec["node"]["name"], node.get_reservation_state()))
    end = dt.datetime.strptime(s.get_lease_end(), "%Y-%m-%d %H:%M:%S %z")
    left = end - dt.datetime.now(dt.timezone.utc)
    if left < dt.timedelta(days=spec["slice"].get("renew_below_days", 3)):
        reasons.append("lease ends %s (renew)" % s.get_lease_end())
    return not reasons, reasons


def host_vars(fab, spec, s):
    """The inventory variables fabric-vm.yml needs, read from the live slice."""
    node = s.get_node(name=spec["node"]["name"])
    ext = s.get_network(name=EXT_NET)
    public_ip = ext.get_public_ips()[0]
    prefix = str(ext.get_subnet()).split("/")[-1]
    hv = {
        "ansible_host": str(node.get_management_ip()),
        "ansible_user": str(node.get_username()),
        "ansible_ssh_private_key_file": str(fab.fablib.get_default_slice_private_key_file()),
        "ansible_ssh_common_args": "-o ProxyJump=%s@%s -o IdentityFile=%s" % (
            fab.fablib.get_bastion_username(), fab.fablib.get_bastion_host(), fab.fablib.get_bastion_key_filename()),
        "ansible_become": True,
        "fabric_network_public": {"mac": str(node.get_interface(network_name=EXT_NET).get_mac()),
                                  "address": "%s/%s" % (public_ip, prefix), "gateway": str(ext.get_gateway())},
        "podman_host_network": "host",
    }
    # FABRIC attaches NVMe drives as PCI devices: they appear in order as nvme0n1, nvme1n1...
    drives = [d for d in spec["node"].get("nvme", []) for _ in range(d.get("count", 1))]
    hv["fabric_network_nvme"] = [{"device": "/dev/nvme%dn1" % i, "path": d["mount"] if j == 0 else "%s-%d" % (d["mount"], j)}
                                 for i, (j, d) in enumerate(_numbered(drives)) if d.get("mount")]
    fp = spec["network"].get("facility_port")
    if fp:
        hv["fabric_network_instrument"] = {"mac": str(node.get_interface(network_name=INST_NET).get_mac()),
                                           "address": fp["address"]}
    return hv


def deploy(fab, spec, s):
    """Writes an inventory (the site's, plus this host) and runs the FABRIC playbook."""
    with open(spec["deploy"]["inventory"], encoding="utf-8") if not fab.dry_run else _nothing() as f:
        site = yaml.safe_load(f) if f else {"all": {"children": {"cloudlet": {"vars": {}}}}}
    group = site["all"]["children"]["cloudlet"]
    group["hosts"] = {spec["node"]["name"]: host_vars(fab, spec, s)}
    fd, path = tempfile.mkstemp(prefix="cloudlet-fabric-", suffix=".yml")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        yaml.safe_dump(site, out, sort_keys=False)
    argv = ["ansible-playbook", "-i", path, spec["deploy"]["playbook"]]
    fab.out.write("run: %s\n" % " ".join(shlex.quote(a) for a in argv))
    if fab.dry_run:
        os.unlink(path)
        return 0
    return subprocess.call(argv, cwd=os.path.dirname(spec["deploy"]["playbook"]))


def _numbered(drives):
    """(index within its spec entry, entry) for each drive."""
    seen = {}
    for d in drives:
        key = id(d)
        seen[key] = seen.get(key, -1) + 1
        yield seen[key], d


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["validate", "check", "create", "renew", "recreate", "up", "deploy"])
    ap.add_argument("--spec", default=os.path.join(HERE, "slice.example.yml"))
    ap.add_argument("--dry-run", action="store_true", help="print the fablib calls; import nothing of fablib")
    ap.add_argument("--no-deploy", action="store_true", help="stop after the slice is up")
    args = ap.parse_args(argv)
    try:
        spec = load_spec(args.spec)
    except (SpecError, OSError, yaml.YAMLError) as err:
        sys.stderr.write("%s\n" % err)
        return 2
    if args.command == "validate":
        print("%s: valid" % args.spec)
        return 0

    fab = Fabric(args.dry_run)
    name = spec["slice"]["name"]
    if args.command == "check":
        ok, reasons = check(fab, spec)
        print("%s: %s" % (name, "ok" if ok else "; ".join(reasons)))
        return 0 if ok else 1
    if args.command == "renew":
        s = fab.fablib.get_slice(name=name)
        s.renew(lease_end(spec["slice"].get("lease_days", 14)))
        return 0
    if args.command == "deploy":
        return deploy(fab, spec, fab.fablib.get_slice(name=name))

    if args.command in ("recreate", "up"):
        ok, reasons = check(fab, spec)
        if args.command == "up" and ok:
            s = fab.fablib.get_slice(name=name)
            s.renew(lease_end(spec["slice"].get("lease_days", 14)))
            return 0 if args.no_deploy else deploy(fab, spec, s)
        exists = not (reasons and reasons[0].endswith("does not exist"))
        if args.command == "up" and exists and all(r.startswith("lease ends") for r in reasons):
            s = fab.fablib.get_slice(name=name)
            s.renew(lease_end(spec["slice"].get("lease_days", 14)))
            return 0 if args.no_deploy else deploy(fab, spec, s)
        if exists:
            print("%s: re-creating (%s)" % (name, "; ".join(reasons) or "asked to"))
            fab.fablib.get_slice(name=name).delete()
    s = build(fab, spec)
    return 0 if args.no_deploy else deploy(fab, spec, s)


if __name__ == "__main__":
    sys.exit(main())
