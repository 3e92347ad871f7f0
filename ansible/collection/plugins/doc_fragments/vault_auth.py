# -*- coding: utf-8 -*-

# Copyright: (c) 2026, Homelab SSO maintainers
# MIT License (see LICENSE in the collection)
from __future__ import annotations


class ModuleDocFragment(object):

    # How the modules log in to Vault/OpenBao (the auth half of ConnParams).
    DOCUMENTATION = r"""
options:
  auth_method:
    description: How to authenticate.
    type: str
    choices: [token, approle, userpass]
    default: token
  token:
    description:
      - Token for O(auth_method=token). Falls back to E(VAULT_TOKEN) (preferred - it shows in no task argument),
        then to the token file (O(token_path)/O(token_file)).
    type: str
  token_path:
    description:
      - Directory of the token file, read when neither O(token) nor E(VAULT_TOKEN) is set (as community.hashi_vault does).
        Defaults to the home directory of the user the module runs as, where C(bao login) and C(vault login) leave C(.vault-token).
    type: path
  token_file:
    description: Name of the token file inside O(token_path).
    type: str
    default: .vault-token
  auth_mount:
    description:
      - Mount path of the auth method (default C(approle) or C(userpass)).
      - C(.) and C(..) segments are refused (they would address another URL path).
    type: str
    aliases: [mount_point]
  role_id:
    description: AppRole role ID, for O(auth_method=approle).
    type: str
  secret_id:
    description: AppRole secret ID, for O(auth_method=approle).
    type: str
  username:
    description:
      - User for O(auth_method=userpass). C(.) and C(..) segments are refused (they would address another URL path).
    type: str
  password:
    description: Password for O(auth_method=userpass).
    type: str
"""
