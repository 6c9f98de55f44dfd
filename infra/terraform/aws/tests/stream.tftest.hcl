# Streaming scoring: encrypted streams, the checkpoint table (encrypted, PITR), and a consumer role that can do
# only what the consumer does.
mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  environment             = "prod"
  name_prefix             = "acme-mlops"
  usecases                = ["uc_a"]
  pii_key_secret_arn      = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mlops/pii-key-AbCdEf"
  prefect_api_url         = "https://prefect.example.com/api"
  mlflow_tracking_uri     = "https://mlflow.example.com"
  worker_image_repository = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-worker"
  worker_image_tag        = "0123abc"
  vpc_id                  = "vpc-0123456789abcdef0"
  subnet_ids              = ["subnet-0123456789abcdef0"]
  stream_name             = "flights-in"
  stream_output_name      = "flights-scored"
  eks_oidc_provider_arn   = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABCDEF"
}

run "streams_and_table_are_encrypted_and_the_table_recoverable" {
  command = apply

  assert {
    condition     = aws_kinesis_stream.input[0].encryption_type == "KMS" && aws_kinesis_stream.input[0].kms_key_id == aws_kms_key.data.arn
    error_message = "the input stream is encrypted with the environment's data key"
  }

  assert {
    condition     = aws_kinesis_stream.output["flights-scored"].encryption_type == "KMS"
    error_message = "the output stream is encrypted too"
  }

  assert {
    condition = (
      aws_dynamodb_table.stream_checkpoints[0].server_side_encryption[0].enabled
      && aws_dynamodb_table.stream_checkpoints[0].server_side_encryption[0].kms_key_arn == aws_kms_key.data.arn
      && aws_dynamodb_table.stream_checkpoints[0].point_in_time_recovery[0].enabled
      && aws_dynamodb_table.stream_checkpoints[0].deletion_protection_enabled
    )
    error_message = "the checkpoint table is KMS-encrypted, has point-in-time recovery and deletion protection"
  }

  assert {
    condition = (
      aws_dynamodb_table.stream_checkpoints[0].hash_key == "lease_key"
      && aws_dynamodb_table.stream_checkpoints[0].range_key == "shard_id"
    )
    error_message = "the table's keys are those adapters/checkpoints.py uses"
  }
}

run "the_consumer_role_reads_its_stream_writes_its_items_and_predictions_only" {
  command = apply

  assert {
    condition     = [for s in jsondecode(aws_iam_role_policy.stream_consumer[0].policy).Statement : s.Resource if s.Sid == "ReadInputStream"][0] == "arn:aws:kinesis:us-east-1:123456789012:stream/flights-in"
    error_message = "the consumer reads its input stream only"
  }

  assert {
    condition = !anytrue([for s in jsondecode(aws_iam_role_policy.stream_consumer[0].policy).Statement :
    s.Sid == "ReadInputStream" && contains(flatten([s.Action]), "kinesis:PutRecords")])
    error_message = "the consumer never writes its input stream"
  }

  assert {
    condition = [for s in jsondecode(aws_iam_role_policy.stream_consumer[0].policy).Statement :
      s.Condition["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"] if s.Sid == "OwnCheckpointsAndLeases"
    ][0] == ["mlops-stream-scorer|flights-in"]
    error_message = "the consumer touches only its own application's items of the table"
  }

  assert {
    condition     = [for s in jsondecode(aws_iam_role_policy.stream_consumer[0].policy).Statement : s.Resource if s.Sid == "WritePredictionsAndDeadLetter"][0] == ["arn:aws:s3:::acme-mlops-prod-lake/uc_a/predictions/*"]
    error_message = "the consumer writes under <usecase>/predictions/ of the lake only"
  }

  assert {
    condition     = [for s in jsondecode(aws_iam_role_policy.stream_consumer[0].policy).Statement : s.Resource if s.Sid == "PutOutputStream"][0] == "arn:aws:kinesis:us-east-1:123456789012:stream/flights-scored"
    error_message = "the consumer puts onto the output stream only"
  }

  assert {
    condition = alltrue([for s in jsondecode(aws_iam_role_policy.stream_consumer[0].policy).Statement :
    !contains(flatten([s.Resource]), "*") && !anytrue([for a in flatten([s.Action]) : endswith(a, ":*")])])
    error_message = "no statement of the consumer's policy grants '*' resources or actions"
  }

  assert {
    condition     = strcontains(aws_iam_role.stream_consumer[0].assume_role_policy, "system:serviceaccount:mlops:stream-consumer")
    error_message = "the consumer's Kubernetes service account may assume the role through IRSA"
  }
}

run "no_stream_no_streaming_resources" {
  command = plan

  variables {
    stream_name = ""
  }

  assert {
    condition     = length(aws_kinesis_stream.input) == 0 && length(aws_dynamodb_table.stream_checkpoints) == 0 && length(aws_iam_role.stream_consumer) == 0
    error_message = "streaming is off unless a stream is named"
  }
}
