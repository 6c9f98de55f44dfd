# The deployments of prefect.yaml, as data: one entry per deployment, the same values (YAML anchors expanded).
# tests/infra/test_terraform_prefect.py reads prefect.yaml at test time and names every difference, so a
# deployment added or changed there fails the test until it is mirrored here.
locals {
  # prefect.yaml `pull`: a worker runs the flows from the code at MLOPS_REPO_DIR (a checkout for the process pool,
  # /opt/mlops in the image for container pools, set in their job env)
  pull_steps = [
    {
      type      = "set_working_directory"
      directory = "{{ $MLOPS_REPO_DIR }}"
    },
  ]

  deployments = {
    "land" = {
      flow              = "land"
      entrypoint        = "flows/land.py:land"
      description       = "Land one month of raw source data as an upstream delivery (replays of the reference data)."
      work_pool         = "mlops-process"
      work_queue        = "default"
      tags              = ["mlops"]
      concurrency_limit = null
      parameters        = {}
      schedules         = []
      triggers          = []
    }
    "ingest" = {
      flow              = "ingest"
      entrypoint        = "flows/ingest.py:ingest"
      description       = "Validate a landed batch, quarantine bad rows, write a versioned curated snapshot."
      work_pool         = "mlops-process"
      work_queue        = "default"
      tags              = ["mlops"]
      concurrency_limit = null
      parameters        = {}
      schedules         = []
      triggers          = []
    }
    "train" = {
      flow              = "train"
      entrypoint        = "flows/train.py:train"
      description       = "Train the pipeline on curated snapshots and log it, its metrics and its contract to MLflow."
      work_pool         = "mlops-process"
      work_queue        = "default"
      tags              = ["mlops"]
      concurrency_limit = null
      parameters        = {}
      schedules         = []
      triggers          = []
    }
    "register" = {
      flow              = "register"
      entrypoint        = "flows/register.py:register"
      description       = "Register a training run as @challenger; the promotion gate decides on @champion."
      work_pool         = "mlops-process"
      work_queue        = "default"
      tags              = ["mlops"]
      concurrency_limit = 1
      parameters        = {}
      schedules         = []
      triggers          = []
    }
    "retrain" = {
      flow              = "retrain"
      entrypoint        = "flows/retrain.py:retrain"
      description       = "Ingest landed batches, train on the trailing months, register behind the gate. Started by the drift and performance events below (and by hand); single-flight, and idempotent per data window."
      work_pool         = "mlops-process"
      work_queue        = "default"
      tags              = ["mlops"]
      concurrency_limit = 1
      parameters = {
        trailing_months = 3
        reason          = "scheduled retraining"
      }
      schedules = []
      triggers = [
        {
          type    = "event"
          enabled = true
          posture = "Reactive"
          match = {
            "prefect.resource.id" = "mlops.model.*"
          }
          expect    = ["mlops.drift.detected"]
          for_each  = ["prefect.resource.id", "mlops.window"]
          threshold = 1
          within    = 3600
          parameters = {
            usecase    = "{{ event.resource.get('mlops.usecase') }}"
            window_end = "{{ event.resource.get('mlops.window') }}"
            reason     = "{{ event.payload.reason }}"
            evidence   = "{{ event.payload.evidence_uri }}"
          }
        },
        {
          type    = "event"
          enabled = true
          posture = "Reactive"
          match = {
            "prefect.resource.id" = "mlops.model.*"
          }
          expect    = ["mlops.performance.degraded"]
          for_each  = ["prefect.resource.id", "mlops.window"]
          threshold = 1
          within    = 3600
          parameters = {
            usecase    = "{{ event.resource.get('mlops.usecase') }}"
            window_end = "{{ event.resource.get('mlops.window') }}"
            reason     = "{{ event.payload.reason }}"
            evidence   = "{{ event.payload.evidence_uri }}"
          }
        },
        {
          type    = "event"
          enabled = true
          posture = "Reactive"
          match = {
            "prefect.resource.id" = "mlops.model.*"
          }
          expect    = ["mlops.performance.estimated_degraded"]
          for_each  = ["prefect.resource.id", "mlops.window"]
          threshold = 1
          within    = 3600
          parameters = {
            usecase    = "{{ event.resource.get('mlops.usecase') }}"
            window_end = "{{ event.resource.get('mlops.window') }}"
            reason     = "{{ event.payload.reason }}"
            evidence   = "{{ event.payload.evidence_uri }}"
          }
        },
      ]
    }
    "score" = {
      flow              = "score"
      entrypoint        = "flows/score.py:score"
      description       = "Score a batch with the @champion model (default, the latest curated month); lineage on every row, bad rows quarantined."
      work_pool         = "mlops-process"
      work_queue        = "default"
      tags              = ["mlops"]
      concurrency_limit = 1
      parameters = {
        model_alias = "champion"
        usecase     = "flight_delay"
      }
      schedules = [
        {
          cron     = "0 5 * * *"
          timezone = "UTC"
        },
      ]
      triggers = []
    }
    "drift-check" = {
      flow              = "drift-check"
      entrypoint        = "flows/drift.py:drift_check"
      description       = "Compare the inputs and scores of the latest scored window with the champion's reference; emit mlops.drift.detected when the debounced decision asks for retraining."
      work_pool         = "mlops-process"
      work_queue        = "default"
      tags              = ["mlops"]
      concurrency_limit = 1
      parameters = {
        usecase = "flight_delay"
      }
      schedules = [
        {
          cron     = "30 5 * * *"
          timezone = "UTC"
        },
      ]
      triggers = []
    }
    "performance-check" = {
      flow              = "performance-check"
      entrypoint        = "flows/performance.py:performance_check"
      description       = "Join the latest scored window with its arrived labels; realized metrics per window; emit mlops.performance.degraded below the floor or too far under the champion's holdout metric."
      work_pool         = "mlops-process"
      work_queue        = "default"
      tags              = ["mlops"]
      concurrency_limit = 1
      parameters = {
        usecase = "flight_delay"
      }
      schedules = [
        {
          cron     = "0 6 * * *"
          timezone = "UTC"
        },
      ]
      triggers = []
    }
    "approval-timeout" = {
      flow              = "approval-timeout"
      entrypoint        = "flows/approval.py:approval_timeout"
      description       = "Record outcome not_promoted for a register run whose approval (gate mode approval) was not given in time; started by that run's expiry."
      work_pool         = "mlops-process"
      work_queue        = "default"
      tags              = ["mlops"]
      concurrency_limit = null
      parameters        = {}
      schedules         = []
      triggers = [
        {
          type    = "event"
          enabled = true
          posture = "Reactive"
          match = {
            "prefect.resource.id"   = "prefect.flow-run.*"
            "prefect.state-message" = "The flow was paused and never resumed."
          }
          match_related = {
            "prefect.resource.role" = "flow"
            "prefect.resource.name" = "register"
          }
          expect    = ["prefect.flow-run.Failed"]
          for_each  = ["prefect.resource.id"]
          threshold = 1
          within    = 3600
          parameters = {
            flow_run_id = "{{ event.resource.id }}"
          }
        },
      ]
    }
    "score-glucose-high" = {
      flow              = "score"
      entrypoint        = "flows/score.py:score"
      description       = "Score the latest curated week of glucose_high with its @champion model."
      work_pool         = "mlops-process"
      work_queue        = "default"
      tags              = ["mlops"]
      concurrency_limit = 1
      parameters = {
        model_alias = "champion"
        usecase     = "glucose_high"
      }
      schedules = [
        {
          cron     = "0 5 * * 1"
          timezone = "UTC"
        },
      ]
      triggers = []
    }
    "drift-check-glucose-high" = {
      flow              = "drift-check"
      entrypoint        = "flows/drift.py:drift_check"
      description       = "Drift check of the latest scored week of glucose_high; emits mlops.drift.detected."
      work_pool         = "mlops-process"
      work_queue        = "default"
      tags              = ["mlops"]
      concurrency_limit = 1
      parameters = {
        usecase = "glucose_high"
      }
      schedules = [
        {
          cron     = "30 5 * * 1"
          timezone = "UTC"
        },
      ]
      triggers = []
    }
    "performance-check-glucose-high" = {
      flow              = "performance-check"
      entrypoint        = "flows/performance.py:performance_check"
      description       = "Performance check of the latest scored week of glucose_high once its labels arrived."
      work_pool         = "mlops-process"
      work_queue        = "default"
      tags              = ["mlops"]
      concurrency_limit = 1
      parameters = {
        usecase = "glucose_high"
      }
      schedules = [
        {
          cron     = "0 6 * * 1"
          timezone = "UTC"
        },
      ]
      triggers = []
    }
    "land-labels" = {
      flow              = "land-labels"
      entrypoint        = "flows/labels.py:land_labels"
      description       = "Store the labels of one period that arrived after scoring, joinable by id; quarantine the rest."
      work_pool         = "mlops-process"
      work_queue        = "default"
      tags              = ["mlops"]
      concurrency_limit = null
      parameters        = {}
      schedules         = []
      triggers          = []
    }
    "rollback" = {
      flow              = "rollback"
      entrypoint        = "flows/register.py:rollback"
      description       = "Move @champion back to the previous champion and record why."
      work_pool         = "mlops-process"
      work_queue        = "default"
      tags              = ["mlops"]
      concurrency_limit = 1
      parameters        = {}
      schedules         = []
      triggers          = []
    }
    "backup" = {
      flow              = "backup"
      entrypoint        = "flows/backup.py:backup"
      description       = "Consistent, checksummed backup of the MLflow store and artifacts, Prefect's database and the lake's pointers and manifests; keeps the newest `backup.keep` (config) under `backup.root`."
      work_pool         = "mlops-process"
      work_queue        = "default"
      tags              = ["mlops"]
      concurrency_limit = 1
      parameters        = {}
      schedules = [
        {
          cron     = "0 3 * * *"
          timezone = "UTC"
        },
      ]
      triggers = []
    }
  }
}
