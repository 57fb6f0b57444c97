#!/usr/bin/env python3
"""Request latency through each way in, against REST in the same run.

Starts `berth serve --engine fake` with MQTT (a private mosquitto on
loopback) and a POSIX queue, then times N sequential requests per
transport, from the request's send to its reply, for two verbs: `status`
of one object (a read) and `apply` of a Container whose env changes each
time (a durable write). REST is the baseline: one keep-alive connection
(http.client) posting to /apply; MQTT 5 a paho client with a response
topic; the queue a posix_ipc client with its own reply queue. Prints p50
and p99 in milliseconds and each p50 as a ratio to REST's.

    ~/.cache/berth-tools/venv/bin/python scripts/bench/ingress.py [--berth target/release/berth] [-n 200]

Needs the venv of scripts/setup-clients.sh (paho-mqtt, posix_ipc) and
Debian's mosquitto. Takes about 30 s.
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import posix_ipc
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

CONTAINER = """apiVersion: berth.dev/v1alpha1
kind: Container
metadata:
  name: bench
spec:
  image: busybox
  command: [sleep, "3600"]
  env:
    - name: N
      value: "{n}"
"""
STATUS = "{kind: Container, name: bench}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(path, text, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path) and text in open(path).read():
            return
        time.sleep(0.05)
    sys.exit("no `%s` in %s:\n%s" % (text, path, open(path).read() if os.path.exists(path) else ""))


class Rest:
    name = "rest"

    def __init__(self, url, token):
        self.host, self.port = url.replace("http://", "").split(":")
        self.token = token
        self.reset()

    def reset(self):
        """A fresh connection: berth closes one idle past --header-timeout."""
        self.conn = http.client.HTTPConnection(self.host, int(self.port))

    def call(self, verb, payload):
        if verb == "status":
            path = "/apis/berth.dev/v1alpha1/namespaces/default/containers/bench"
            self.conn.request("GET", path, headers={"Authorization": "Bearer " + self.token})
        else:
            headers = {"Authorization": "Bearer " + self.token, "Content-Type": "application/yaml"}
            self.conn.request("POST", "/apply", body=payload, headers=headers)
        response = self.conn.getresponse()
        body = response.read()
        assert response.status == 200, (response.status, body[:300])


class Mqtt:
    name = "mqtt"

    def __init__(self, port, node):
        self.node = node
        self.topic = "bench/replies/" + uuid.uuid4().hex
        self.got = threading.Event()
        self.reply = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self.on_message
        self.client.connect("127.0.0.1", port)
        # paho leaves Nagle on: a small publish would wait for a delayed ACK.
        self.client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.loop_start()
        self.client.subscribe(self.topic, qos=1)
        subscribed.wait(10)

    def on_message(self, client, userdata, message):
        self.reply = dict(message.properties.UserProperty).get("code")
        self.got.set()

    def call(self, verb, payload):
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = self.topic
        props.CorrelationData = uuid.uuid4().bytes
        self.got.clear()
        self.client.publish("berth/%s/cmd/%s" % (self.node, verb), payload, qos=1, properties=props)
        assert self.got.wait(10), "no MQTT reply"
        assert self.reply == "200", self.reply


class Queue:
    name = "mq"

    def __init__(self, name):
        self.request = posix_ipc.MessageQueue(name)
        self.reply_name = "/bench-reply-" + uuid.uuid4().hex[:8]
        self.reply = posix_ipc.MessageQueue(self.reply_name, posix_ipc.O_CREX, max_messages=10, max_message_size=8192)

    def call(self, verb, payload):
        header = "berth/1 %s reply=%s\n" % (verb, self.reply_name)
        self.request.send(header.encode() + payload.encode(), 10)
        frame, _ = self.reply.receive(10)
        assert b" code=200 " in frame.split(b"\n", 1)[0], frame[:200]

    def close(self):
        self.reply.close()
        self.reply.unlink()


def percentile(samples, p):
    samples = sorted(samples)
    return samples[min(len(samples) - 1, int(len(samples) * p))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--berth", default="target/release/berth")
    parser.add_argument("-n", type=int, default=200)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="berth-bench-ingress-")
    port = free_port()
    with open(os.path.join(work, "mosquitto.conf"), "w") as conf:
        conf.write("listener %d 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n" % port)
    broker = subprocess.Popen(["/usr/sbin/mosquitto", "-c", os.path.join(work, "mosquitto.conf")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    queue_name = "/bench-" + uuid.uuid4().hex[:8]
    log = os.path.join(work, "berth.log")
    berth = subprocess.Popen(
        [args.berth, "serve", "--engine", "fake", "--state-dir", os.path.join(work, "state"),
         "--listen", "127.0.0.1:0", "--tls-listen", "off", "--dns-listen", "off", "--proxy-listen", "off",
         "--mqtt", "mqtt://127.0.0.1:%d" % port, "--node", "bench", "--mq", queue_name],
        stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=dict(os.environ, RUST_LOG="warn,berth=info", NO_COLOR="1"))
    try:
        wait_for(log, "MQTT connected")
        wait_for(log, "POSIX message queue requests on")
        url = open(log).read().split("REST API on ")[1].split()[0]
        token = open(os.path.join(work, "state", "token")).read().strip()
        transports = [Rest(url, token), Mqtt(port, "bench"), Queue(queue_name)]
        transports[0].call("apply", CONTAINER.format(n=0))
        results = {}
        counter = 1
        for verb in ("status", "apply"):
            for transport in transports:
                getattr(transport, "reset", lambda: None)()
                transport.call(verb, STATUS if verb == "status" else CONTAINER.format(n=counter))
                counter += 1
                samples = []
                for _ in range(args.n):
                    payload = STATUS if verb == "status" else CONTAINER.format(n=counter)
                    counter += 1
                    started = time.perf_counter()
                    transport.call(verb, payload)
                    samples.append((time.perf_counter() - started) * 1000)
                results[(verb, transport.name)] = samples
        print("%-7s %-5s %9s %9s %9s" % ("verb", "via", "p50 ms", "p99 ms", "p50/rest"))
        for verb in ("status", "apply"):
            base = statistics.median(results[(verb, "rest")])
            for transport in transports:
                samples = results[(verb, transport.name)]
                p50 = statistics.median(samples)
                print("%-7s %-5s %9.2f %9.2f %8.2fx" % (verb, transport.name, p50, percentile(samples, 0.99), p50 / base))
        transports[2].close()
    finally:
        berth.terminate()
        berth.wait(20)
        broker.terminate()
        try:
            posix_ipc.unlink_message_queue(queue_name)
        except posix_ipc.ExistentialError:
            pass


if __name__ == "__main__":
    main()
