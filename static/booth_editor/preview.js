// Small still pictures of models for the asset list: one offscreen three.js renderer draws
// each model once, framed from a three-quarter view, into an image.

import * as THREE from "three";

const SIZE_PX = 96;
let renderer = null;

export function modelPicture(object) {
  if (renderer === null) {
    try {
      renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true, alpha: true });
    } catch {
      renderer = false;
    }
    if (renderer) renderer.setSize(SIZE_PX, SIZE_PX);
  }
  if (!renderer) return null;
  const scene = new THREE.Scene();
  scene.add(new THREE.AmbientLight("#ffffff", 1.2));
  const light = new THREE.DirectionalLight("#ffffff", 2);
  light.position.set(3, 5, 4);
  scene.add(light);
  const model = object.clone(true);
  scene.add(model);
  const box = new THREE.Box3().setFromObject(model);
  const centre = box.getCenter(new THREE.Vector3());
  const radius = Math.max(0.01, box.getSize(new THREE.Vector3()).length() / 2);
  const camera = new THREE.PerspectiveCamera(35, 1, radius / 100, radius * 100);
  camera.position.copy(centre).add(new THREE.Vector3(1, 0.8, 1.2).normalize().multiplyScalar(radius * 3.2));
  camera.lookAt(centre);
  renderer.render(scene, camera);
  return renderer.domElement.toDataURL("image/png");
}
