"""Follow the DAG repository: git-sync, push webhooks, and pinning local files to commits."""

from controller.gitsync.checkout import GitSyncError
from controller.gitsync.config import Backoff, GitSyncConfig, GitSyncConfigError, HttpsAuth, SshAuth
from controller.gitsync.syncer import GitSync, SyncResult, SyncStatus

__all__ = [
    "Backoff",
    "GitSync",
    "GitSyncConfig",
    "GitSyncConfigError",
    "GitSyncError",
    "HttpsAuth",
    "SshAuth",
    "SyncResult",
    "SyncStatus",
]
