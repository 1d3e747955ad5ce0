import EdgePlanCore
import Foundation
import Testing

@testable import EdgePlanDaemon

/// Builds sysfs-shaped trees in a temporary directory.
final class FakeSysfs {
    let root: String

    init() {
        root = NSTemporaryDirectory() + "edgeplan-sysfs-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func write(_ path: String, _ text: String) {
        let full = root + path
        try! FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true
        )
        try! (text + "\n").write(toFile: full, atomically: true, encoding: .utf8)
    }

    func directory(_ path: String) {
        try! FileManager.default.createDirectory(atPath: root + path, withIntermediateDirectories: true)
    }

    /// The AGX Orin's two INA3221s as JetPack 5/6 expose them, under a given hwmon number.
    func orinHwmon(hwmon: Int = 3) {
        let first = "/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon\(hwmon)"
        for (k, label, mv, ma) in [
            (1, "VDD_GPU_SOC", 5000, 2400), (2, "VDD_CPU_CV", 5000, 600), (3, "VIN_SYS_5V0", 5000, 1000),
        ] {
            write("\(first)/in\(k)_label", label)
            write("\(first)/in\(k)_input", "\(mv)")
            write("\(first)/curr\(k)_input", "\(ma)")
        }
        let second = "/sys/bus/i2c/drivers/ina3221/1-0041/hwmon/hwmon\(hwmon + 1)"
        write("\(second)/in1_label", "NC")
        write("\(second)/in1_input", "0")
        write("\(second)/curr1_input", "0")
        write("\(second)/in2_label", "VDDQ_VDD2_1V8AO")
        write("\(second)/in2_input", "1800")
        write("\(second)/curr2_input", "500")
    }
}

@Suite struct PowerRailsTests {
    @Test func jetpack5HwmonRailsAreSummedAndNCSkipped() throws {
        let sysfs = FakeSysfs()
        sysfs.orinHwmon(hwmon: 7)
        let rails = try PowerRails.open(nil, sysfsRoot: sysfs.root)
        let reading = try rails.read()
        #expect(reading.rails.map(\.name) == ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"])
        // mV x mA / 1000 = mW: 5000 mV x 2400 mA = 12 W.
        #expect(abs(reading.rails[0].powerW - 12) < 1e-9)
        #expect(abs(reading.totalW - (12 + 3 + 5 + 0.9)) < 1e-9)
        #expect(reading.problems.isEmpty)
        #expect(rails.description.hasPrefix("ina3221 (hwmon"))
    }

    @Test func jetpack4IIORails() throws {
        let sysfs = FakeSysfs()
        let base = "/sys/bus/i2c/drivers/ina3221x/1-0040/iio:device0"
        sysfs.write("\(base)/rail_name_0", "GPU")
        sysfs.write("\(base)/in_power0_input", "4200")
        sysfs.write("\(base)/in_voltage0_input", "19000")
        sysfs.write("\(base)/in_current0_input", "221")
        sysfs.write("\(base)/rail_name_1", "CPU")
        sysfs.write("\(base)/in_power1_input", "800")
        let rails = try PowerRails.open(.ina3221IIO, sysfsRoot: sysfs.root)
        let reading = try rails.read()
        #expect(reading.rails.map(\.name) == ["GPU", "CPU"])
        #expect(abs(reading.totalW - 5.0) < 1e-9)
        #expect(reading.rails[0].voltageV == 19)
    }

    @Test func garbageMissingAndUnreadableChannelsAreNamedNotFatal() throws {
        let sysfs = FakeSysfs()
        sysfs.orinHwmon()
        let first = "/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
        let rails = try PowerRails.open(.ina3221, sysfsRoot: sysfs.root)
        sysfs.write("\(first)/in1_input", "garbage\u{0}")
        try FileManager.default.removeItem(atPath: sysfs.root + "\(first)/curr2_input")
        try FileManager.default.removeItem(atPath: sysfs.root + "\(first)/in3_input")
        sysfs.directory("\(first)/in3_input")  // a directory where a file should be: cannot be read
        let reading = try rails.read()
        #expect(reading.rails.map(\.name) == ["VDDQ_VDD2_1V8AO"])
        #expect(reading.problems.count == 3)
        #expect(
            reading.problems[0].contains("VDD_GPU_SOC") && reading.problems[0].contains("expected a number")
                && reading.problems[0].contains("in1_input")
        )
        #expect(reading.problems[1].contains("curr2_input") && reading.problems[1].contains("missing"))
        #expect(reading.problems[2].contains("in3_input") && reading.problems[2].contains("cannot read"))
        // When nothing can be read the error says so, and names each file.
        try FileManager.default.removeItem(atPath: sysfs.root + "/sys/bus/i2c/drivers/ina3221/1-0041")
        #expect { try rails.read() } throws: { "\($0)".contains("no INA3221 rail could be read") }
    }

    @Test func noSensorsIsAClearError() {
        let sysfs = FakeSysfs()
        #expect { try PowerRails.open(.ina3221, sysfsRoot: sysfs.root) } throws: {
            "\($0)".contains("no INA3221 hwmon channels")
        }
        #expect { try PowerRails.open(.rapl, sysfsRoot: sysfs.root) } throws: { "\($0)".contains("no RAPL zones") }
        #expect { try PowerRails.open(.nvml, sysfsRoot: sysfs.root) } throws: { "\($0)".contains("NVML") }
    }

    @Test func raplCountsAcrossTheWrap() throws {
        let sysfs = FakeSysfs()
        let zone = "/sys/class/powercap/intel-rapl:0"
        sysfs.write("\(zone)/name", "package-0")
        sysfs.write("\(zone)/max_energy_range_uj", "1000000")
        sysfs.write("\(zone)/energy_uj", "900000")
        sysfs.write("/sys/class/powercap/intel-rapl:0:0/energy_uj", "5")  // a subzone: must not be counted twice
        let clock = TestClock()
        let rails = try RAPLSource(SysfsRoot(sysfs.root), clock: { clock.now })
        #expect(try rails.read().totalW == 0)
        clock.now = 2
        sysfs.write("\(zone)/energy_uj", "100000")  // wrapped: 100000 + 1000000 - 900000 = 200000 uJ in 2 s
        let reading = try rails.read()
        #expect(abs(reading.totalW - 0.1) < 1e-12)
        #expect(abs((reading.energyCounterJ ?? 0) - 0.2) < 1e-12)
        #expect(rails.description == "rapl (package-0)")
        sysfs.write("\(zone)/energy_uj", "lots")
        #expect { try rails.read() } throws: { "\($0)".contains("energy_uj") }
    }

    @Test func contextReadsPowerModeAndGPUFrequency() {
        let sysfs = FakeSysfs()
        #expect(DeviceContext.read(SysfsRoot(sysfs.root)) == DeviceContext())
        sysfs.write("/var/lib/nvpmodel/status", "pmode:0002")
        sysfs.write("/sys/class/devfreq/17000000.gpu/cur_freq", "918000000")
        sysfs.write("/sys/class/devfreq/17000000.gpu/max_freq", "1300500000")
        let context = DeviceContext.read(SysfsRoot(sysfs.root))
        #expect(context.powerMode == "pmode:0002")
        #expect(context.gpuFrequencyHz == 918_000_000)
        #expect(context.summary == "pmode:0002 gpu 918/1300 MHz")
        sysfs.write("/var/lib/nvpmodel/status", "garbage")
        #expect(DeviceContext.read(SysfsRoot(sysfs.root)).powerMode == nil)
    }

    @Test func replayTracesAndTheirErrors() throws {
        let sysfs = FakeSysfs()
        sysfs.write(
            "/trace.jsonl",
            #"{"time_s": 0, "rails": {"GPU": 10}}"# + "\n" + #"{"time_s": 0.05, "rails": {"GPU": 30, "CPU": 2}}"#
        )
        let replay = try ReplaySource(path: sysfs.root + "/trace.jsonl")
        #expect(try replay.read().totalW == 10)
        #expect(try replay.read().totalW == 32)
        #expect(try replay.read().totalW == 10)
        sysfs.write("/bad.jsonl", #"{"time_s": 0, "rails": {"GPU": -1}}"#)
        #expect { try ReplaySource(path: sysfs.root + "/bad.jsonl") } throws: {
            ($0 as? EdgePlanError)?.field == "rails.GPU" && ($0 as? EdgePlanError)?.line == 1
        }
    }

    @Test func samplerAttributesEnergyToAWindowWithBoundedMemory() throws {
        let sysfs = FakeSysfs()
        sysfs.orinHwmon()
        let clock = TestClock()
        let sampler = RailSampler(
            source: try PowerRails.open(.ina3221, sysfsRoot: sysfs.root),
            interval: 0.05,
            capacity: 100,
            clock: { clock.now }
        )
        for step in 0..<300 {
            clock.now = Double(step) * 0.05
            sampler.sampleOnce()
        }
        #expect(sampler.samples.count == 100)
        #expect(sampler.samples.first?.time == 200 * 0.05)
        // 20.9 W for 2 s.
        let energy = try #require(sampler.energy(from: 11, to: 13))
        #expect(abs(energy - 41.8) < 1e-6)
        #expect(sampler.energy(from: 1, to: 2) == nil)  // no longer in the ring
    }
}

final class TestClock: @unchecked Sendable {
    var now = 0.0
}
