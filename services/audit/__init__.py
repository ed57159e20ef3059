"""The auditor workbench: an application that owns no topic and reads every service's,
rebuilding the programme as known at or as true on a moment, a worker's history, the report."""
