"""Accuracy through the whole service: real photos with official ground truth, submitted to
the API, run by a real worker, scored from what a client downloads.

VOC: pooled 21x21 confusion over the 200 images of ../shared/eval/voc-val (255 ignored),
mIoU over the 21 classes (../shared/eval/BASELINES.md, section 1). COCO: the instances'
RLE masks from each job's summary, scored by pycocotools' COCOeval (segm) on the 129
images of ../shared/eval/coco-val. The floors sit just under what the service measures
now (72.98% and 29.7), so a change that loses accuracy anywhere on the path fails here.
"""

import io
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from PIL import Image

from tests.conftest import EVAL, eval_photo

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

VOC_MIOU_FLOOR = 72.5
COCO_MASK_AP_FLOOR = 29.0


@pytest.fixture(scope="module")
def worker(start_worker):
    return start_worker("accuracy")


def run_all(client, paths, **fields):
    """Submit every photo (four in flight), then wait for each; jobs in the given order."""

    def one(path):
        response = client.submit(path.read_bytes(), path.name, **fields)
        assert response.status_code == 202, response.text
        job = client.wait(response.headers["Location"], timeout=120)
        assert job["status"] == "succeeded", job["error"]
        return job

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, paths))


def download(url):
    response = requests.get(url, timeout=30)
    assert response.status_code == 200
    return np.asarray(Image.open(io.BytesIO(response.content)))


def voc_confusion(client, model):
    ids = eval_photo("voc-val/val_subset.txt").read_text().split()
    photos = [EVAL / "voc-val" / "JPEGImages" / f"{i}.jpg" for i in ids]
    jobs = run_all(client, photos, task="semantic", model=model)
    confusion = np.zeros((21, 21), dtype=np.int64)
    for image_id, job in zip(ids, jobs, strict=True):
        truth = np.asarray(Image.open(EVAL / "voc-val" / "SegmentationClass" / f"{image_id}.png"))
        predicted = download(job["result"]["files"]["mask"])
        assert predicted.shape == truth.shape  # at the photo's own size
        keep = truth != 255
        confusion += np.bincount(21 * truth[keep].astype(np.int64) + predicted[keep], minlength=441).reshape(
            21, 21
        )
    return confusion


def test_deeplab_through_the_api_keeps_its_voc_miou(worker, client, figure):
    confusion = voc_confusion(client, "deeplabv3_mnv2_pascal")
    true_positive = np.diag(confusion)
    iou = true_positive / (confusion.sum(0) + confusion.sum(1) - true_positive)
    miou = 100 * iou.mean()
    figure(
        f"VOC mIoU through the API, deeplabv3_mnv2_pascal, 200 voc-val images: {miou:.2f}% (person {100 * iou[15]:.2f}%)"
    )
    assert miou >= VOC_MIOU_FLOOR


def test_yolov8_through_the_api_keeps_its_coco_mask_ap(worker, client, figure):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    annotations = eval_photo("coco-val/instances.json")
    truth = COCO(str(annotations))
    category = {c["name"]: c["id"] for c in truth.loadCats(truth.getCatIds())}
    images = truth.loadImgs(truth.getImgIds())
    photos = [EVAL / "coco-val" / "images" / image["file_name"] for image in images]
    # The lowest threshold a job takes: AP integrates over every score.
    jobs = run_all(client, photos, task="instance", model="yolov8n_seg_coco", score_threshold="0.01")
    found = [
        {
            "image_id": image["id"],
            "category_id": category[instance["label"]],
            "segmentation": instance["rle"],
            "score": instance["score"],
        }
        for image, job in zip(images, jobs, strict=True)
        for instance in job["result"]["summary"]["instances"]
    ]
    evaluation = COCOeval(truth, truth.loadRes(json.loads(json.dumps(found))), "segm")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    mask_ap = 100 * evaluation.stats[0]
    figure(f"COCO mask AP through the API, yolov8n_seg_coco, 129 coco-val images: {mask_ap:.1f}")
    assert mask_ap >= COCO_MASK_AP_FLOOR
