"""Create the kubedag schema: dags, dag_runs, task_instances, watch_cursors, events.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "dags",
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("revision", sa.String(64), nullable=False),
        sa.Column("spec_revision", sa.String(64), nullable=True),
        sa.Column("spec_hash", sa.String(128), nullable=True),
        sa.Column("spec", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        _timestamp("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_dags"),
    )
    op.create_table(
        "dag_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dag_name", sa.String(63), nullable=False),
        _timestamp("logical_date", nullable=False),
        sa.Column("run_type", sa.String(32), nullable=False),
        sa.Column("revision", sa.String(64), nullable=False),
        sa.Column("spec", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("params", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        _timestamp("created_at", nullable=False),
        _timestamp("started_at", nullable=True),
        _timestamp("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_dag_runs"),
        sa.ForeignKeyConstraint(["dag_name"], ["dags.name"], name="fk_dag_runs_dag_name_dags"),
        sa.UniqueConstraint("dag_name", "logical_date", name="uq_dag_runs_dag_name_logical_date"),
    )
    op.create_index("ix_dag_runs_state", "dag_runs", ["state"])
    op.create_table(
        "task_instances",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("task_name", sa.String(63), nullable=False),
        sa.Column("item_index", sa.Integer(), nullable=False),
        sa.Column("item", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("try_number", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("failure_kind", sa.String(32), nullable=True),
        sa.Column("pod_name", sa.String(253), nullable=True),
        sa.Column("namespace", sa.String(63), nullable=True),
        sa.Column("node", sa.String(253), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        _timestamp("not_before", nullable=True),
        _timestamp("created_at", nullable=False),
        _timestamp("launched_at", nullable=True),
        _timestamp("started_at", nullable=True),
        _timestamp("finished_at", nullable=True),
        _timestamp("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_task_instances"),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["dag_runs.id"],
            name="fk_task_instances_run_id_dag_runs",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "run_id",
            "task_name",
            "item_index",
            "try_number",
            name="uq_task_instances_run_id_task_name_item_index_try_number",
        ),
        sa.UniqueConstraint("pod_name", name="uq_task_instances_pod_name"),
    )
    op.create_index("ix_task_instances_state_not_before", "task_instances", ["state", "not_before"])
    op.create_table(
        "watch_cursors",
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("resource_version", sa.String(64), nullable=False),
        _timestamp("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("namespace", name="pk_watch_cursors"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _timestamp("at", nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("dag_name", sa.String(63), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("task_name", sa.String(63), nullable=True),
        sa.Column("item_index", sa.Integer(), nullable=True),
        sa.Column("try_number", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(none_as_null=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_dag_name_id", "events", ["dag_name", "id"])
    op.create_index("ix_events_run_id_id", "events", ["run_id", "id"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("watch_cursors")
    op.drop_table("task_instances")
    op.drop_table("dag_runs")
    op.drop_table("dags")
