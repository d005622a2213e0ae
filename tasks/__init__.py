"""Prefect tasks: read inputs -> call sdfb -> write Parquet atomically -> return the path."""
