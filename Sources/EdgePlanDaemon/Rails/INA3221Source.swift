import EdgePlanCore
import Foundation

/// The Jetson INA3221 power monitors: hwmon on JetPack 5/6, IIO on JetPack 4.
///
/// hwmon: `/sys/bus/i2c/drivers/ina3221/<bus-addr>/hwmon/hwmon<N>/in<k>_label`, `in<k>_input` (mV),
/// `curr<k>_input` (mA), k = 1...3; the hwmon number changes between boots, so it is globbed; "NC"
/// (not connected) channels are skipped. IIO: `/sys/bus/i2c/drivers/ina3221x/<bus-addr>/iio:device<N>/`
/// `rail_name_<k>`, `in_power<k>_input` (mW), `in_voltage<k>_input` (mV), `in_current<k>_input` (mA), k = 0...2.
public struct INA3221Source: PowerRailSource {
    struct Channel: Sendable {
        var name: String
        var power: String?
        var voltage: String
        var current: String?
    }

    let channels: [Channel]
    let root: SysfsRoot
    public let description: String

    public static func hwmon(_ root: SysfsRoot) throws -> INA3221Source {
        let driver = "/sys/bus/i2c/drivers/ina3221"
        var channels: [Channel] = []
        var devices = 0
        for device in root.entries(driver) where device.contains("-") {
            for hwmon in root.entries("\(driver)/\(device)/hwmon", prefix: "hwmon") {
                devices += 1
                let base = "\(driver)/\(device)/hwmon/\(hwmon)"
                for k in 1...3 where root.exists("\(base)/in\(k)_input") {
                    let label = (try? root.text("\(base)/in\(k)_label")) ?? "\(device)/in\(k)"
                    guard label != "NC", !label.isEmpty else { continue }
                    channels.append(
                        Channel(
                            name: label,
                            power: nil,
                            voltage: "\(base)/in\(k)_input",
                            current: "\(base)/curr\(k)_input"
                        )
                    )
                }
            }
        }
        guard !channels.isEmpty else {
            throw EdgePlanError(.io, "no INA3221 hwmon channels", file: root.resolve(driver))
        }
        return INA3221Source(
            channels: channels,
            root: root,
            description: "ina3221 (hwmon, \(devices) devices, \(channels.count) rails)"
        )
    }

    public static func iio(_ root: SysfsRoot) throws -> INA3221Source {
        let driver = "/sys/bus/i2c/drivers/ina3221x"
        var channels: [Channel] = []
        var devices = 0
        for device in root.entries(driver) where device.contains("-") {
            for iio in root.entries("\(driver)/\(device)", prefix: "iio:device") {
                devices += 1
                let base = "\(driver)/\(device)/\(iio)"
                for k in 0...2 where root.exists("\(base)/in_power\(k)_input") {
                    let label = (try? root.text("\(base)/rail_name_\(k)")) ?? "\(device)/\(k)"
                    guard label != "NC", !label.isEmpty else { continue }
                    channels.append(
                        Channel(
                            name: label,
                            power: "\(base)/in_power\(k)_input",
                            voltage: "\(base)/in_voltage\(k)_input",
                            current: "\(base)/in_current\(k)_input"
                        )
                    )
                }
            }
        }
        guard !channels.isEmpty else { throw EdgePlanError(.io, "no INA3221 IIO channels", file: root.resolve(driver)) }
        return INA3221Source(
            channels: channels,
            root: root,
            description: "ina3221 (iio, \(devices) devices, \(channels.count) rails)"
        )
    }

    public func read() throws -> RailReading {
        var rails: [RailSample] = []
        var problems: [String] = []
        for channel in channels {
            do {
                if let power = channel.power {
                    let milliwatts = try root.number(power)
                    let volts = (try? root.number(channel.voltage)).map { $0 / 1000 }
                    let amps = channel.current.flatMap { try? root.number($0) }.map { $0 / 1000 }
                    rails.append(
                        RailSample(name: channel.name, powerW: milliwatts / 1000, voltageV: volts, currentA: amps)
                    )
                } else {
                    let millivolts = try root.number(channel.voltage)
                    let milliamps = try root.number(channel.current!)
                    // mV x mA / 1000 = mW.
                    rails.append(
                        RailSample(
                            name: channel.name,
                            powerW: millivolts * milliamps / 1e6,
                            voltageV: millivolts / 1000,
                            currentA: milliamps / 1000
                        )
                    )
                }
            } catch {
                problems.append("\(channel.name): \(error)")
            }
        }
        guard !rails.isEmpty else {
            throw EdgePlanError(.io, "no INA3221 rail could be read: " + problems.joined(separator: "; "))
        }
        return RailReading(rails: rails, energyCounterJ: nil, problems: problems)
    }
}
