//! Configuration read from the environment, following the Cloud Run container contract.
