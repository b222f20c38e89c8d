"""Create the media bucket (MEDIA_STORAGE=s3) if it is not there yet: once, before the
service starts (docker-compose.yml runs it). django-storages never creates buckets itself."""

import time

from botocore.exceptions import ClientError
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError

from jobs.lifecycle.storage import is_unreachable


class Command(BaseCommand):
    help = "Create the S3 bucket media is stored in, if it does not exist (MEDIA_STORAGE=s3)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--wait", type=int, default=60, help="seconds to wait for a store that is still starting"
        )

    def handle(self, **options):
        if settings.MEDIA_STORAGE != "s3":
            self.stdout.write(f"MEDIA_STORAGE={settings.MEDIA_STORAGE}: no bucket to create")
            return
        bucket = default_storage.bucket
        client = default_storage.connection.meta.client
        deadline = time.monotonic() + options["wait"]
        while True:
            try:
                client.head_bucket(Bucket=bucket.name)
                self.stdout.write(f"bucket {bucket.name} exists")
                return
            except Exception as exc:
                if isinstance(exc, ClientError) and exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
                    break
                if not is_unreachable(exc):
                    raise
                if time.monotonic() > deadline:
                    raise CommandError(f"the store is unreachable: {exc}") from exc
                time.sleep(1)
        region = client.meta.region_name
        # Outside AWS's first region, AWS wants to be told where; other stores ignore it.
        where = (
            {}
            if region in (None, "us-east-1")
            else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        )
        client.create_bucket(Bucket=bucket.name, **where)
        self.stdout.write(f"bucket {bucket.name} created")
