"""A kubelet stand-in: registers Nodes and runs the pods bound to them, as local
processes or by script. The annotation names that script a pod are in behaviour.py."""

from controller.nodeagent.agent import AgentConfig, NodeAgent
from controller.nodeagent.behaviour import (
    DURATION,
    EXIT_CODE,
    FAILURE,
    INIT_DURATION,
    INIT_EXIT_CODE,
    INIT_FAILURE,
    LOG,
    MODE,
    NODE_LOST,
    PROCESS,
    SCRIPTED,
    TERMINATION_MESSAGE,
)
from controller.nodeagent.handle import NodeAgentHandle

__all__ = [
    "DURATION",
    "EXIT_CODE",
    "FAILURE",
    "INIT_DURATION",
    "INIT_EXIT_CODE",
    "INIT_FAILURE",
    "LOG",
    "MODE",
    "NODE_LOST",
    "PROCESS",
    "SCRIPTED",
    "TERMINATION_MESSAGE",
    "AgentConfig",
    "NodeAgent",
    "NodeAgentHandle",
]
