// The market's floor in three.js, coloured by booth, with the borders between booths:
// from the same geometry as the top-down map (static/operator_ui/booths.js).

import * as THREE from "three";

export function floorObjects(geometry, dim = 0.55) {
  const count = geometry.count;
  const data = new Uint8Array(count * count * 4);
  const colour = new THREE.Color();
  for (let row = 0; row < count; row += 1) {
    for (let i = 0; i < count; i += 1) {
      // the plane is turned to lie flat: texture rows run from far z to near z
      colour.set(geometry.booths[geometry.grid[i][count - 1 - row]].colour);
      const at = (row * count + i) * 4;
      data[at] = colour.r * 255 * dim + 20;
      data[at + 1] = colour.g * 255 * dim + 20;
      data[at + 2] = colour.b * 255 * dim + 20;
      data[at + 3] = 255;
    }
  }
  const texture = new THREE.DataTexture(data, count, count);
  texture.needsUpdate = true;
  const spanX = geometry.hi[0] - geometry.lo[0];
  const spanZ = geometry.hi[2] - geometry.lo[2];
  const floor = new THREE.Mesh(new THREE.PlaneGeometry(spanX, spanZ), new THREE.MeshBasicMaterial({ map: texture }));
  floor.rotation.x = -Math.PI / 2;
  floor.position.set(geometry.lo[0] + spanX / 2, 0, geometry.lo[2] + spanZ / 2);
  const points = [];
  geometry.borders.forEach(([x0, z0, x1, z1]) => points.push(x0, 0.05, z0, x1, 0.05, z1));
  const lines = new THREE.BufferGeometry();
  lines.setAttribute("position", new THREE.Float32BufferAttribute(points, 3));
  const borders = new THREE.LineSegments(lines, new THREE.LineBasicMaterial({ color: "#e9edf2" }));
  return [floor, borders];
}
