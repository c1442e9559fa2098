// A booth's placed assets as three.js objects: GLB and glTF models through the glTF loader,
// images as framed panels standing on the floor. The editor's previews, the dashboard's
// orbit view and the visitor page all draw booths with this.
//
// Budget: each model and each image is parsed once per page (placements share its geometry
// and textures), at most LOADS_AT_ONCE load at a time, and once the models drawn reach
// TRIANGLE_BUDGET triangles further models are drawn as their bounding boxes, so that a
// market of 32 furnished booths stays smooth on a software renderer.

import * as THREE from "three";
import { GLTFLoader } from "../vendor/three/loaders/GLTFLoader.js";
import { assetKey } from "./chunk_cache.js";

export const TRIANGLE_BUDGET = 400000;
const LOADS_AT_ONCE = 4;
const PANEL_HEIGHT_M = 1.5;
const PANEL_LIFT_M = 0.3;
const FRAME_M = 0.08;
const TEXTURE_MAX_PX = 1024;
const FRAME_MATERIAL = new THREE.MeshBasicMaterial({ color: "#2b2118" });

export function isModel(asset) {
  return asset.content_type === "model/gltf-binary" || asset.content_type === "model/gltf+json";
}

export function isImage(asset) {
  return asset.content_type.startsWith("image/");
}

function triangles(object) {
  let count = 0;
  object.traverse(function (node) {
    if (!node.isMesh) return;
    const geometry = node.geometry;
    count += (geometry.index ? geometry.index.count : geometry.attributes.position.count) / 3;
  });
  return count;
}

export class Furnisher {
  constructor(cache, triangleBudget = TRIANGLE_BUDGET) {
    this.cache = cache;
    this.triangleBudget = triangleBudget;
    this.parsed = 0; // assets parsed: once per asset, however often it is placed
    this.prototypes = new Map(); // asset key → Promise<{kind, object | texture, triangles}>
    this.queue = [];
    this.running = 0;
    this.trianglesDrawn = 0;
    this.loader = new GLTFLoader();
  }

  // Runs `job` when fewer than LOADS_AT_ONCE loads are running.
  limit(job) {
    return new Promise((resolve, reject) => {
      this.queue.push({ job, resolve, reject });
      this.pump();
    });
  }

  pump() {
    while (this.running < LOADS_AT_ONCE && this.queue.length) {
      const { job, resolve, reject } = this.queue.shift();
      this.running += 1;
      job()
        .then(resolve, reject)
        .finally(() => {
          this.running -= 1;
          this.pump();
        });
    }
  }

  prototype(asset) {
    const key = assetKey(asset);
    if (!this.prototypes.has(key)) {
      const made = this.limit(async () => {
        const bytes = await this.cache.asset(asset);
        this.parsed += 1;
        if (isModel(asset)) {
          const gltf = await this.loader.parseAsync(bytes, "");
          return { kind: "model", object: gltf.scene, triangles: triangles(gltf.scene) };
        }
        const texture = await imageTexture(bytes, asset.content_type);
        return { kind: "image", texture };
      });
      made.catch(() => this.prototypes.delete(key));
      this.prototypes.set(key, made);
    }
    return this.prototypes.get(key);
  }

  // A group holding every placement of `manifest`'s assets, filled as they load;
  // `done` resolves (with the count drawn) once all of them are in.
  booth(manifest, onError) {
    const group = new THREE.Group();
    group.name = "booth-" + manifest.booth;
    const loads = [];
    manifest.assets.forEach((asset) => {
      if (!asset.placements.length || !(isModel(asset) || isImage(asset))) return;
      loads.push(
        this.prototype(asset).then(
          (proto) => asset.placements.forEach((placement) => group.add(this.place(proto, placement))),
          (error) => onError && onError(asset, error),
        ),
      );
    });
    group.userData.done = Promise.all(loads).then(() => group.children.length);
    return group;
  }

  place(proto, placement) {
    let object;
    if (proto.kind === "model") {
      if (this.trianglesDrawn + proto.triangles > this.triangleBudget) {
        object = boundingBox(proto.object);
      } else {
        object = proto.object.clone(true);
        this.trianglesDrawn += proto.triangles;
      }
    } else {
      object = framedPanel(proto.texture);
    }
    const [x, y, z] = placement.position;
    object.position.set(x, y, z);
    object.rotation.y = placement.yaw;
    object.scale.setScalar(placement.scale);
    return object;
  }

  // Forget a booth's group: its triangles no longer count (shared prototypes stay).
  release(group) {
    group.traverse((node) => {
      if (node.isMesh && node.userData.counted !== false) {
        const geometry = node.geometry;
        this.trianglesDrawn -= (geometry.index ? geometry.index.count : geometry.attributes.position.count) / 3;
      }
    });
    this.trianglesDrawn = Math.max(0, this.trianglesDrawn);
    if (group.parent) group.parent.remove(group);
  }
}

async function imageTexture(bytes, type) {
  const blob = new Blob([bytes], { type });
  const bitmap = await createImageBitmap(blob, { imageOrientation: "flipY" });
  let source = bitmap;
  if (Math.max(bitmap.width, bitmap.height) > TEXTURE_MAX_PX) {
    const ratio = TEXTURE_MAX_PX / Math.max(bitmap.width, bitmap.height);
    source = await createImageBitmap(blob, {
      imageOrientation: "flipY",
      resizeWidth: Math.round(bitmap.width * ratio),
      resizeHeight: Math.round(bitmap.height * ratio),
    });
  }
  const texture = new THREE.Texture(source);
  texture.flipY = false; // flipped while decoding: WebGL cannot flip an ImageBitmap
  texture.colorSpace = THREE.SRGBColorSpace;
  texture.needsUpdate = true;
  texture.userData.aspect = source.width / Math.max(1, source.height);
  return texture;
}

// An image standing upright, its face towards +z before the placement turns it.
function framedPanel(texture) {
  const height = PANEL_HEIGHT_M;
  const width = height * texture.userData.aspect;
  const group = new THREE.Group();
  const picture = new THREE.Mesh(
    new THREE.PlaneGeometry(width, height),
    new THREE.MeshBasicMaterial({ map: texture, side: THREE.DoubleSide }),
  );
  picture.position.set(0, PANEL_LIFT_M + height / 2, 0.03);
  const frame = new THREE.Mesh(new THREE.BoxGeometry(width + 2 * FRAME_M, height + 2 * FRAME_M, 0.04), FRAME_MATERIAL);
  frame.position.set(0, PANEL_LIFT_M + height / 2, 0);
  frame.userData.counted = false;
  picture.userData.counted = false;
  group.add(frame, picture);
  return group;
}

function boundingBox(object) {
  // a stand-in over the budget: the model's box, drawn as a wireframe
  const box = new THREE.Box3().setFromObject(object);
  const size = box.getSize(new THREE.Vector3());
  const mesh = new THREE.Mesh(
    new THREE.BoxGeometry(size.x || 0.1, size.y || 0.1, size.z || 0.1),
    new THREE.MeshBasicMaterial({ color: "#8a93a6", wireframe: true }),
  );
  mesh.position.copy(box.getCenter(new THREE.Vector3()));
  mesh.userData.counted = false;
  const holder = new THREE.Group();
  holder.userData.standIn = true;
  holder.add(mesh);
  return holder;
}
