//! `env_harvest`: reads deployed `.env` values from LXC containers on a Proxmox host over one SSH
//! connection (`pct exec <vmid> -- cat -- <path>`), parsed with Docker Compose's `.env` rules.

pub mod dotenv;
