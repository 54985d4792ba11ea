"""Operating runs: operator requests, who set a try's state, pause overrides, backfill caps.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dags") as batch:
        batch.add_column(
            sa.Column("spec_paused", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("paused_by", sa.String(128), nullable=True))
    # Until now only git could pause a DAG, so its stored pause is git's.
    op.execute("UPDATE dags SET spec_paused = paused")
    op.execute("UPDATE dags SET paused_by = 'git' WHERE paused")
    with op.batch_alter_table("dag_runs") as batch:
        batch.add_column(sa.Column("max_active_runs", sa.Integer(), nullable=True))
    with op.batch_alter_table("task_instances") as batch:
        batch.add_column(sa.Column("set_by", sa.String(128), nullable=True))
    op.create_table(
        "action_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("dag_name", sa.String(63), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("task_name", sa.String(63), nullable=True),
        sa.Column("item_index", sa.Integer(), nullable=True),
        sa.Column("options", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_action_requests"),
    )
    op.create_index("ix_action_requests_state_id", "action_requests", ["state", "id"])
    # Retention deletes old finished runs by age; without this it scans the table.
    op.create_index("ix_dag_runs_finished_at", "dag_runs", ["finished_at"])
    op.create_index("ix_events_at", "events", ["at"])


def downgrade() -> None:
    op.drop_index("ix_events_at", "events")
    op.drop_index("ix_dag_runs_finished_at", "dag_runs")
    op.drop_table("action_requests")
    with op.batch_alter_table("task_instances") as batch:
        batch.drop_column("set_by")
    with op.batch_alter_table("dag_runs") as batch:
        batch.drop_column("max_active_runs")
    with op.batch_alter_table("dags") as batch:
        batch.drop_column("paused_by")
        batch.drop_column("spec_paused")
