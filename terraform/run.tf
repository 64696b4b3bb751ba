locals {
  # Environment shared by both services. PORT, K_SERVICE, K_REVISION and K_CONFIGURATION are set
  # by Cloud Run itself.
  common_env = {
    GOOGLE_CLOUD_PROJECT        = var.project_id
    LOG_FORMAT                  = "json"
    TELEMETRY                   = "on"
    RUST_LOG                    = var.log_level
    ENABLE_FAULT_ROUTES         = tostring(var.enable_fault_routes)
    PAYMENT_FAILURE_RATE        = tostring(var.payment_failure_rate)
    OTEL_TRACES_SAMPLER_ARG     = tostring(var.trace_sampling_ratio)
    OTEL_METRIC_EXPORT_INTERVAL = tostring(var.metric_export_interval_ms)
  }
}

# The backend: private. Only the frontend's service account holds roles/run.invoker on it (iam.tf);
# every other caller gets 403 from Cloud Run before the container sees the request.
# Ingress stays "all" because the frontend reaches it through its run.app URL over Google's front
# end; INTERNAL_ONLY would also need the frontend's egress routed through a VPC.
resource "google_cloud_run_v2_service" "backend" {
  name                = local.services.backend
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = var.deletion_protection

  template {
    service_account                  = google_service_account.runtime["backend"].email
    max_instance_request_concurrency = 80

    scaling {
      min_instance_count = var.backend_min_instances
      max_instance_count = var.backend_max_instances
    }

    containers {
      image = var.image

      ports {
        container_port = 8080
      }

      dynamic "env" {
        for_each = local.common_env
        content {
          name  = env.key
          value = env.value
        }
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
        # CPU always allocated (instance-based billing). With the default request-based billing
        # Cloud Run throttles the CPU between requests, so the background span and metric
        # exporters stall and telemetry is lost or late. The cost: an instance is billed for its
        # whole lifetime (until it idles out, ~15 min after the last request), not only while it
        # serves; with min instances 0 an idle service still costs nothing.
        cpu_idle = false
        # More CPU during start-up: shorter cold starts for the first request after scale-from-zero.
        startup_cpu_boost = true
      }

      startup_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds    = 2
        timeout_seconds   = 1
        failure_threshold = 15
      }

      liveness_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds    = 15
        timeout_seconds   = 3
        failure_threshold = 3
      }
    }
  }

  lifecycle {
    # cloudbuild.yaml rolls out new images with `gcloud run deploy`; Terraform must not roll them back.
    ignore_changes = [template[0].containers[0].image, client, client_version]
  }

  depends_on = [google_project_service.enabled]
}

# The frontend: the public HTTPS endpoint (allUsers may invoke it, iam.tf). It calls the backend at
# DOWNSTREAM_URL with a Google-signed ID token for that URL, fetched from the metadata server.
resource "google_cloud_run_v2_service" "frontend" {
  name                = local.services.frontend
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = var.deletion_protection

  template {
    service_account                  = google_service_account.runtime["frontend"].email
    max_instance_request_concurrency = 80

    scaling {
      min_instance_count = var.frontend_min_instances
      max_instance_count = var.frontend_max_instances
    }

    containers {
      image = var.image

      ports {
        container_port = 8080
      }

      dynamic "env" {
        for_each = merge(local.common_env, { DOWNSTREAM_URL = google_cloud_run_v2_service.backend.uri })
        content {
          name  = env.key
          value = env.value
        }
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
        # Same trade-off as the backend: telemetry exported reliably, billed per instance lifetime.
        cpu_idle          = false
        startup_cpu_boost = true
      }

      startup_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds    = 2
        timeout_seconds   = 1
        failure_threshold = 15
      }

      liveness_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds    = 15
        timeout_seconds   = 3
        failure_threshold = 3
      }
    }
  }

  lifecycle {
    ignore_changes = [template[0].containers[0].image, client, client_version]
  }

  depends_on = [google_project_service.enabled]
}
