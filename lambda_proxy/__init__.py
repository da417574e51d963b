"""mless proxy: the code deployed to Lambda; standard library and boto3 only."""
