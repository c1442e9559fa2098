// The orbit view: the same market in 3-D, the camera circling a point on the floor.
// Built on first use; while hidden it renders nothing and its controls hear nothing.

import * as THREE from "three";
import { OrbitControls } from "../vendor/three/controls/OrbitControls.js";
import { NEED_COLOURS, PORTAL_COLOUR, PROP_COLOUR, WALL_COLOUR } from "../mapgen/draw.js";
import { DOT_MIGRATING, DOT_VISITOR, NO_ZONE } from "./feed.js";

const VISITOR_COLOUR = new THREE.Color("#ffffff");
const NPC_COLOUR = new THREE.Color("#8a93a6");
const DOT_LIFT_M = 0.6;

export class OrbitView {
  constructor(container, labels, reservedRight) {
    this.container = container;
    this.reservedRight = reservedRight; // () → pixels covered by the panel on the right
    this.labels = labels;
    this.geometry = null;
    this.layout = null; // a generated market's layout (static/mapgen/)
    this.frame = null;
    this.marker = null;
    this.boothOf = (zone) => zone; // the booth a zone serves (a spare may serve part of one)
    this.renderer = null;
    this.failure = null;
    this.pointers = new Set();
    this.active = false;
  }

  // Returns false (with this.failure saying why) when the browser has no WebGL.
  build() {
    if (this.renderer || this.failure) return this.failure === null;
    try {
      this.renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
    } catch (error) {
      this.failure = `The orbit view needs WebGL, which this browser does not offer (${error.message}).`;
      const note = document.createElement("p");
      note.className = "orbit-failure";
      note.textContent = this.failure;
      this.container.appendChild(note);
      return false;
    }
    this.renderer.setPixelRatio(window.devicePixelRatio || 1);
    this.renderer.setClearColor("#1d2026");
    this.container.appendChild(this.renderer.domElement);
    this.scene = new THREE.Scene();
    this.camera = new THREE.PerspectiveCamera(45, 1, 0.5, 3000);
    this.controls = new OrbitControls(this.camera, this.renderer.domElement);
    this.controls.enableDamping = false;
    this.controls.maxPolarAngle = Math.PI * 0.48;
    this.controls.enabled = false;
    const dom = this.renderer.domElement;
    dom.addEventListener("pointerdown", (e) => this.pointers.add(e.pointerId));
    dom.addEventListener("pointerup", (e) => this.pointers.delete(e.pointerId));
    dom.addEventListener("pointercancel", (e) => this.pointers.delete(e.pointerId));
    this.scene.add(new THREE.AmbientLight("#ffffff", 1));
    this.dotsGeometry = new THREE.BufferGeometry();
    this.dots = new THREE.Points(
      this.dotsGeometry,
      new THREE.PointsMaterial({ size: 1.1, vertexColors: true, sizeAttenuation: true }),
    );
    this.dots.frustumCulled = false;
    this.scene.add(this.dots);
    this.capacity = 0;
    this.markerMesh = new THREE.Mesh(
      new THREE.RingGeometry(0.9, 1.3, 32),
      new THREE.MeshBasicMaterial({ color: "#ff50a0", transparent: true, side: THREE.DoubleSide }),
    );
    this.markerMesh.rotation.x = -Math.PI / 2;
    this.markerMesh.visible = false;
    this.scene.add(this.markerMesh);
    if (this.geometry) this.setGeometry(this.geometry);
    if (this.layout) this.setLayout(this.layout);
    return true;
  }

  setGeometry(geometry) {
    this.geometry = geometry;
    if (!this.renderer) return;
    if (this.floor) this.scene.remove(this.floor, this.borders);
    const count = geometry.count;
    const data = new Uint8Array(count * count * 4);
    const colour = new THREE.Color();
    for (let row = 0; row < count; row += 1) {
      for (let i = 0; i < count; i += 1) {
        // the plane is turned to lie flat: texture rows run from far z to near z
        colour.set(geometry.booths[geometry.grid[i][count - 1 - row]].colour);
        const at = (row * count + i) * 4;
        data[at] = colour.r * 255 * 0.55 + 20;
        data[at + 1] = colour.g * 255 * 0.55 + 20;
        data[at + 2] = colour.b * 255 * 0.55 + 20;
        data[at + 3] = 255;
      }
    }
    const texture = new THREE.DataTexture(data, count, count);
    texture.needsUpdate = true;
    const spanX = geometry.hi[0] - geometry.lo[0];
    const spanZ = geometry.hi[2] - geometry.lo[2];
    this.floor = new THREE.Mesh(
      new THREE.PlaneGeometry(spanX, spanZ),
      new THREE.MeshBasicMaterial({ map: texture }),
    );
    this.floor.rotation.x = -Math.PI / 2;
    this.floor.position.set(geometry.lo[0] + spanX / 2, 0, geometry.lo[2] + spanZ / 2);
    const points = [];
    geometry.borders.forEach(([x0, z0, x1, z1]) => points.push(x0, 0.05, z0, x1, 0.05, z1));
    const lines = new THREE.BufferGeometry();
    lines.setAttribute("position", new THREE.Float32BufferAttribute(points, 3));
    this.borders = new THREE.LineSegments(lines, new THREE.LineBasicMaterial({ color: "#e9edf2" }));
    this.scene.add(this.floor, this.borders);
    this.home();
  }

  // The generated layout's walls, props, items and portals as boxes standing on the floor.
  setLayout(layout) {
    this.layout = layout;
    if (!this.renderer) return;
    if (this.layoutGroup) this.scene.remove(this.layoutGroup);
    const group = new THREE.Group();
    const unit = new THREE.BoxGeometry(1, 1, 1);
    const materials = new Map();
    const material = function (colour, opacity = 1) {
      const key = `${colour}/${opacity}`;
      if (!materials.has(key)) {
        materials.set(key, new THREE.MeshBasicMaterial({ color: colour, transparent: opacity < 1, opacity: opacity }));
      }
      return materials.get(key);
    };
    const add = function (box, colour, opacity) {
      const mesh = new THREE.Mesh(unit, material(colour, opacity));
      mesh.scale.set((box[3] - box[0]) / 100, (box[4] - box[1]) / 100, (box[5] - box[2]) / 100);
      mesh.position.set((box[0] + box[3]) / 200, (box[1] + box[4]) / 200, (box[2] + box[5]) / 200);
      group.add(mesh);
    };
    layout.walls.forEach((w) => add(w.box, WALL_COLOUR, w.id.startsWith("edge.") ? 0.25 : 0.85));
    layout.props.forEach((p) => add(p.box, PROP_COLOUR, 1));
    layout.items.forEach((item) => add(item.box, NEED_COLOURS[item.need] || "#ffffff", 1));
    layout.portals.forEach(function (portal) {
      const [x0, z0, x1, z1] = portal.rect;
      add([x0, 0, z0, x1, 300, z1], PORTAL_COLOUR, 0.55);
    });
    this.layoutGroup = group;
    this.scene.add(group);
  }

  home() {
    const g = this.geometry;
    const cx = (g.lo[0] + g.hi[0]) / 2;
    const cz = (g.lo[2] + g.hi[2]) / 2;
    const span = Math.max(g.hi[0] - g.lo[0], g.hi[2] - g.lo[2]);
    this.controls.target.set(cx, 0, cz);
    this.camera.position.set(cx + span * 0.55, span * 0.75, cz + span * 0.95);
    this.controls.update();
  }

  activate() {
    this.active = true;
    this.container.hidden = false;
    if (!this.build()) return;
    this.controls.enabled = true;
  }

  deactivate() {
    this.active = false;
    this.container.hidden = true;
    if (!this.renderer) return;
    // A drag in progress ends here, so that no button stays pressed in the hidden view.
    const dom = this.renderer.domElement;
    this.pointers.forEach((id) => dom.dispatchEvent(new PointerEvent("pointercancel", { pointerId: id })));
    this.pointers.clear();
    this.controls.enabled = false;
  }

  updateDots() {
    const frame = this.frame;
    if (!frame) return;
    if (!this.positions || frame.count > this.capacity) {
      this.capacity = Math.max(1024, frame.count * 2);
      this.positions = new Float32Array(this.capacity * 3);
      this.colours = new Float32Array(this.capacity * 3);
      this.dotsGeometry.setAttribute("position", new THREE.BufferAttribute(this.positions, 3));
      this.dotsGeometry.setAttribute("color", new THREE.BufferAttribute(this.colours, 3));
    }
    const colour = new THREE.Color();
    for (let i = 0; i < frame.count; i += 1) {
      this.positions.set([frame.x[i], frame.y[i] + DOT_LIFT_M, frame.z[i]], i * 3);
      const migrating = frame.kind[i] & DOT_MIGRATING && frame.to[i] !== NO_ZONE;
      const to = migrating ? this.geometry.booths[this.boothOf(frame.to[i])] : null;
      if (to) {
        colour.set(to.colour);
      } else {
        colour.copy(frame.kind[i] & DOT_VISITOR ? VISITOR_COLOUR : NPC_COLOUR);
      }
      this.colours.set([colour.r, colour.g, colour.b], i * 3);
    }
    this.dotsGeometry.setDrawRange(0, frame.count);
    this.dotsGeometry.attributes.position.needsUpdate = true;
    this.dotsGeometry.attributes.color.needsUpdate = true;
  }

  project(x, y, z) {
    const v = new THREE.Vector3(x, y, z).project(this.camera);
    if (v.z > 1 || v.z < -1) return null;
    const w = this.container.clientWidth;
    const h = this.container.clientHeight;
    return [((v.x + 1) / 2) * w, ((1 - v.y) / 2) * h];
  }

  render(nowMs) {
    if (!this.active || !this.renderer || !this.geometry) return;
    const w = this.container.clientWidth;
    const h = this.container.clientHeight;
    const size = this.renderer.getSize(new THREE.Vector2());
    if (size.x !== w || size.y !== h) {
      this.renderer.setSize(w, h);
      this.camera.aspect = w / Math.max(1, h);
      // centre the market in the part of the window the panel leaves free
      this.camera.setViewOffset(w, h, Math.min(this.reservedRight(), w / 2) / 2, 0, w, h);
      this.camera.updateProjectionMatrix();
    }
    this.updateDots();
    if (this.marker) {
      const pulse = (nowMs % 1200) / 1200;
      this.markerMesh.visible = true;
      this.markerMesh.position.set(this.marker.x, 0.1, this.marker.z);
      this.markerMesh.scale.setScalar(1 + pulse * 2);
      this.markerMesh.material.opacity = 1 - pulse;
    } else {
      this.markerMesh.visible = false;
    }
    this.renderer.render(this.scene, this.camera);
    this.labels.place(this.geometry, (x, y, z) => this.project(x, y, z));
  }
}
