"""Follow the DAG repository: git-sync, push webhooks, and pinning local files to commits."""

from controller.gitsync.checkout import GitSyncError
from controller.gitsync.settings import GitSyncConfig, GitSyncConfigError, HttpsAuth
from controller.gitsync.syncer import GitSync, SyncResult, SyncStatus

__all__ = [
    "GitSync",
    "GitSyncConfig",
    "GitSyncConfigError",
    "GitSyncError",
    "HttpsAuth",
    "SyncResult",
    "SyncStatus",
]
