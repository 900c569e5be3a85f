"""pytest plugin shipped with flask-tenants (entry point ``pytest11``)."""
