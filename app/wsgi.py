"""Production entry point: ``gunicorn -k gevent app.wsgi:app`` (the Procfile's ``web``).

gunicorn's gevent worker patches the standard library before this module is imported, so
Flask-SocketIO selects its gevent mode and psycopg and redis cooperate with it.
"""
from app import create_app
from app.collector import settle_collector

app = create_app()
settle_collector()

