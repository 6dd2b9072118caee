"""The HTTP service over a reader: settings and errors (:mod:`.settings`), request batching
(:mod:`.batching`), guards on every request (:mod:`.guards`), counters (:mod:`.metrics`) and the app
(:mod:`.app`, :func:`~.app.create_app`). Needs the ``serve`` extra."""
