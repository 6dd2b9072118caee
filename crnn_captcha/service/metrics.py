"""The service's counters, in Prometheus' text format."""


# ----- metrics ---------------------------------------------------------------------------------
class Metrics:
    """The service's Prometheus metrics, in a registry of its own (several apps may share a process)."""

    def __init__(self):
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            ProcessCollector,
        )

        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, cpu seconds, ...
        self.requests = Counter("crnn_captcha_requests_total", "HTTP requests answered, by route and status",
                                ["route", "status"], registry=self.registry)
        self.errors = Counter("crnn_captcha_errors_total", "error answers by kind", ["kind"], registry=self.registry)
        self.latency = Histogram("crnn_captcha_request_seconds", "time from request to answer, by route", ["route"],
                                 buckets=(.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10),
                                 registry=self.registry)
        self.batch = Histogram("crnn_captcha_batch_images", "images per model call",
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=self.registry)
        self.model_seconds = Histogram("crnn_captcha_model_call_seconds", "time of one model call (decode "
                                       "images, run the model, decode text)",
                                       buckets=(.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2),
                                       registry=self.registry)
        self.images = Counter("crnn_captcha_images_total", "images read, by outcome", ["outcome"],
                              registry=self.registry)
        self.queued = Gauge("crnn_captcha_pending_requests", "requests handed to the model and not yet answered",
                            registry=self.registry)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


