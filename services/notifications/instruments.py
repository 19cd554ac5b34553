"""What the notifications service counts for Prometheus (`/metrics`): messages by status reached,
the gateway's and the delivery reports' latencies, the age of the oldest message not sent yet."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class NotificationMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.messages = Counter("notifications_messages", "Messages by status reached, and provider",
                                ["status", "provider"], registry=registry)
        self.send_seconds = Histogram("notifications_send_duration_seconds", "Time the gateway took to take a message",
                                      registry=registry, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.dlr_seconds = Histogram("notifications_dlr_latency_seconds", "From sending to the delivery report",
                                     registry=registry, buckets=(0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 3600))
        self.queue_age = Gauge("notifications_queue_age_seconds", "Age of the oldest message not sent yet",
                               registry=registry)
        self.status_events = Counter("notifications_status_events", "Status events consumed, by outcome",
                                     ["outcome"], registry=registry)
        self.reports_ignored = Counter("notifications_reports_ignored", "Delivery reports ignored: a bad "
                                       "signature, or a message no gateway was given", ["reason"], registry=registry)
