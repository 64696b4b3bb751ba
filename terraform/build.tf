# What `gcloud builds submit` needs: a repository for the image, a bucket for the uploaded source,
# and a build identity with only the permissions its steps use (cloudbuild.yaml).

resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Images hold no secrets; Google-managed encryption avoids running a KMS key (and its IAM and cost) for public code.
  repository_id = var.name
  location      = var.region
  format        = "DOCKER"
  description   = "Images of ${var.name}, tagged with the commit's short SHA."

  docker_config {
    # A tag is a commit: it never moves, so a rollback redeploys exactly what was tested.
    immutable_tags = true
  }

  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }

  cleanup_policies {
    id     = "delete-older-than-30-days"
    action = "DELETE"
    condition {
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_storage_bucket" "build_source" {
  #checkov:skip=CKV_GCP_62:Holds only the source tarballs gcloud uploads for builds; Cloud Audit Logs already record who reads and writes them.
  #checkov:skip=CKV_GCP_78:Versioning is pointless for throw-away build inputs that expire after 7 days; the source of truth is git.
  name                        = "${var.project_id}-${var.name}-build-src" # <= 63 characters
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  lifecycle_rule {
    condition {
      age = 7
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_service_account" "build" {
  account_id   = "${var.name}-build"
  display_name = "Cloud Build: ${var.name}"
  description  = "Runs cloudbuild.yaml: tests, pushes the image, deploys new revisions of the two services."

  depends_on = [google_project_service.enabled]
}

# Build logs go to Cloud Logging only (cloudbuild.yaml: logging CLOUD_LOGGING_ONLY).
resource "google_project_iam_member" "build_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.build.member
}

# Read the uploaded source: this bucket only.
resource "google_storage_bucket_iam_member" "build_source_reader" {
  bucket = google_storage_bucket.build_source.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}

# Push images: this repository only.
resource "google_artifact_registry_repository_iam_member" "build_pusher" {
  project    = var.project_id
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.build.member
}

# Deploy new revisions: these two services only, not every service in the project.
resource "google_cloud_run_v2_service_iam_member" "build_deployer" {
  for_each = {
    frontend = google_cloud_run_v2_service.frontend.name
    backend  = google_cloud_run_v2_service.backend.name
  }

  project  = var.project_id
  location = var.region
  name     = each.value
  role     = "roles/run.developer"
  member   = google_service_account.build.member
}

# A deploy runs the new revision as the service's runtime account, which needs actAs on that
# account: granted on the two runtime accounts only, never project-wide.
resource "google_service_account_iam_member" "build_acts_as_runtime" {
  for_each = google_service_account.runtime

  service_account_id = each.value.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.build.member
}
