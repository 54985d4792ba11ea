"""Telling people when runs end: webhook notifications of run and task outcomes.

`settings` reads the controller's configuration (receivers by name, each with a URL
read from a mounted Secret file, and which DAG notifies whom of what); `messages` turns
an event into the documented JSON body; `delivery` posts it with a timeout and bounded,
backed-off retries; `follower` reads the event log and hands matching events to
delivery on its own threads, so a slow receiver never holds up the engine.
"""
