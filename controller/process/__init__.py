"""The long-running controller process: leader election, the HTTP endpoint, and wiring.

Everything here is an imperative shell around the layers below it; nothing in this
package decides what a DAG run does next.
"""
