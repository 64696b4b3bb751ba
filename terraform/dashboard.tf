# The service dashboard. The layout lives in dashboards/service.json (valid JSON, edited with the
# console's JSON editor); the service and metric names are filled in here.
resource "google_monitoring_dashboard" "service" {
  dashboard_json = templatefile("${path.module}/dashboards/service.json", {
    title           = "${var.name} service"
    frontend        = local.services.frontend
    backend         = local.services.backend
    errors_metric   = google_logging_metric.errors.name
    payments_metric = google_logging_metric.payment_failures.name
  })

  depends_on = [google_project_service.enabled]
}
