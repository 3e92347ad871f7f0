# -*- coding: utf-8 -*-

# Copyright: (c) 2026, Homelab SSO maintainers
# MIT License (see LICENSE in the collection)
from __future__ import annotations


class ModuleDocFragment(object):

    # The SSH transport to a Proxmox node (SshConn in crates/proxmox_ssh/src/conn.rs).
    DOCUMENTATION = r"""
options:
  host:
    description: The SSH host (the Proxmox node).
    type: str
    required: true
  port:
    description: SSH port, 1 to 65535.
    type: int
    default: 22
  user:
    description: SSH user. pct needs root; a non-root user needs O(sudo) and a sudoers rule for pct.
    type: str
    default: root
  private_key:
    description: Private key file. Without it and O(private_key_data), ssh-agent (E(SSH_AUTH_SOCK)) is used.
    type: path
  private_key_data:
    description: Private key text (OpenSSH or PEM format).
    type: str
  passphrase:
    description: Passphrase of the private key.
    type: str
  known_hosts:
    description:
      - known_hosts file (plain or hashed lines). Unparsable lines, lines that are not UTF-8 and lines with an
        unknown marker are skipped; the rest of the file still counts. Default C(~/.ssh/known_hosts).
      - C(@revoked) lines are honoured as OpenSSH honours them - a key revoked for the host (names, C(*) and C(?)
        wildcards, C(!) negation, hashed names) fails the task before authentication, whatever other lines say,
        and O(host_key_checking=accept-new) never appends it.
      - C(@cert-authority) lines are skipped - host certificates are not supported, so a host vouched for only by
        a CA is unknown.
    type: path
  host_key_fingerprint:
    description:
      - Pin the host key, C(SHA256:...) as C(ssh-keygen -l) prints it. When set, it alone decides - O(known_hosts)
        is not read, its C(@revoked) lines included.
    type: str
  host_key_checking:
    description: What to do with a host key that is not in O(known_hosts).
    type: str
    choices: [strict, accept-new]
    default: strict
  timeout:
    description: Seconds for connecting and for each remote command, 1 to 3600.
    type: int
    default: 30
"""

    # The same transport with each option named ssh_..., plus pct_path and sudo, for modules that
    # need SSH only sometimes (PrefixedSshConn in crates/proxmox_ssh/src/conn.rs). Without
    # ssh_host_key_checking, which not every such module offers.
    PREFIXED = r"""
options:
  ssh_host:
    description: The SSH host (the Proxmox node that runs PocketID's LXC container).
    type: str
  ssh_port:
    description: SSH port, 1 to 65535.
    type: int
    default: 22
  ssh_user:
    description: SSH user. pct needs root; a non-root user needs O(sudo) and a sudoers rule for pct.
    type: str
    default: root
  ssh_private_key:
    description: Private key file. Without it and O(ssh_private_key_data), ssh-agent (E(SSH_AUTH_SOCK)) is used.
    type: path
  ssh_private_key_data:
    description: Private key text (OpenSSH or PEM format).
    type: str
  ssh_passphrase:
    description: Passphrase of the private key.
    type: str
  ssh_known_hosts:
    description: known_hosts file that holds the node's host key (default C(~/.ssh/known_hosts)).
    type: path
  ssh_host_key_fingerprint:
    description:
      - Pin the node's host key, C(SHA256:...) as C(ssh-keygen -l) prints it, instead of O(ssh_known_hosts).
    type: str
  ssh_timeout:
    description: Seconds for connecting and for each remote command, 1 to 3600.
    type: int
    default: 30
  pct_path:
    description: Path of C(pct) on the node.
    type: str
    default: /usr/sbin/pct
  sudo:
    description: Run C(pct) through C(sudo -n).
    type: bool
    default: false
"""
