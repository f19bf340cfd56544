"""The query service: `vectorlake serve` (or `vectorlake stack up --with serve`), HTTP on ``serve.port``.

    curl -s 127.0.0.1:8000/search -H 'content-type: application/json' \\
         -d '{"text": "steel chair", "k": 5, "filters": {"locale": "en-US"}}'

`vectorlake.serve.app` builds the FastAPI application: ``POST /search`` embeds the query with the live
generation's models (loaded once, kept warm) and runs the k-NN query on that generation's index;
``GET /healthz`` says whether it can serve, ``GET /livez`` only that it runs, ``GET /metrics`` is
Prometheus text and ``GET /docs`` the OpenAPI page. `vectorlake.serve.remote` is the standard-library client
`vectorlake search` uses when the service is up. Importing this package imports neither.
"""
