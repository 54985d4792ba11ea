"""The DAG language: model, YAML loading, schema and semantic validation, templates.

Pure: no I/O beyond reading the files it is given, no kubernetes or sqlalchemy import.
"""
