"""Production entry point: ``gunicorn -k gevent -w 1 app.wsgi:app`` (the Procfile's ``web``).

gunicorn's gevent worker patches the standard library before this module is imported, so
Flask-SocketIO selects its gevent mode and psycopg and redis cooperate with it.
"""
import gc

from app import create_app

app = create_app()
# Everything built at start-up (modules, config, compiled templates and SQL) lives as long as the
# process: moved out of the collector's sight, a full collection scans only the objects made since,
# which keeps its pauses -- felt by every socket this worker serves -- several times shorter.
gc.freeze()
