from . import env

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenancy.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.errors.exception_handler",
    # Every read (GET, HEAD, OPTIONS) is throttled per API key (or user): TESSERA_READ_RATE.
    # The ingestion endpoint has its own (TESSERA_INGEST_RATE).
    "DEFAULT_THROTTLE_CLASSES": ["tenancy.throttling.ReadThrottle"],
    "DEFAULT_THROTTLE_RATES": {"ingest": env.INGEST_RATE, "read": env.READ_RATE},
    # Renderers are chosen by the Accept header only: with DRF's default `?format=` override,
    # an unknown value (the schema fuzzer sent one) answered an undocumented, empty 404.
    "URL_FORMAT_OVERRIDE": None,
    "DEFAULT_PAGINATION_CLASS": "config.pagination.Cursor",
    "PAGE_SIZE": 100,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Tessera API",
    "DESCRIPTION": "Usage metering and billing for GPU clouds.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc are served from the sidecar package: no CDN, works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.errors.document_error_codes",
    ],
}
